// Runs a .pte on ExecuTorch's own aarch64 runtime libraries (libexecutorch, the optimized and quantized kernels, the
// XNNPACK delegate, as the executorch 1.5.1 aarch64 wheel ships them for C++ consumers), inside the arm64 rootfs
// under qemu-user. edgeport cross-compiles it when it builds the rootfs (rootfs.py): the wheel's Python extension
// links libtorch, whose only aarch64 build on PyPI is the CUDA one; these libraries link nothing of torch.
//
//   pte_runner MODEL.pte OUTDIR N IN0.bin:TYPE [IN1.bin:TYPE ...]
//
// INk.bin holds N samples of forward's k-th input, contiguous, each in the method's batch-1 shape; TYPE is the
// ExecuTorch ScalarType code the caller wrote them in, checked against the program's. Writes OUTDIR/out<j>.bin
// (N samples of output j, contiguous, in its dim order 0..n-1) and OUTDIR/meta.txt: one line per output
// ("out J SCALAR_TYPE DIM ..."), the emulated CPU's hwcaps and the load / run seconds. Any failure (a dtype or
// shape that differs from the program's, an output that changes shape between samples or is not contiguous, a
// write that fails): one line on stderr, exit 3.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/executor/program.h>

#include <sys/auxv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using executorch::extension::TensorPtr;
using executorch::extension::make_tensor_ptr;
using executorch::extension::module::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::Program;

static int fail(const std::string& what) {
  std::fprintf(stderr, "pte_runner: %s\n", what.c_str());
  return 3;
}

static double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int main(int argc, char** argv) {
  if (argc < 4) {
    return fail("usage: pte_runner MODEL.pte OUTDIR N IN0.bin:TYPE [IN1.bin:TYPE ...]");
  }
  const std::string model = argv[1], outdir = argv[2];
  const long n = std::atol(argv[3]);
  auto t0 = std::chrono::steady_clock::now();
  Module mod(model, Module::LoadMode::File);
  if (mod.load(Program::Verification::InternalConsistency) != Error::Ok) {
    return fail("ExecuTorch could not load " + model);
  }
  Error e = mod.load_method("forward");
  if (e != Error::Ok) {
    return fail("could not load method 'forward' (error " + std::to_string(static_cast<int>(e)) +
                "; an operator or delegate this runtime lacks?)");
  }
  auto meta = mod.method_meta("forward");
  if (!meta.ok()) {
    return fail("no metadata for 'forward'");
  }
  const size_t nin = meta->num_inputs();
  if (static_cast<size_t>(argc - 4) != nin) {
    return fail("forward takes " + std::to_string(nin) + " inputs, " + std::to_string(argc - 4) + " files given");
  }
  std::vector<std::vector<char>> blobs(nin);
  std::vector<std::vector<executorch::aten::SizesType>> sizes(nin);
  std::vector<executorch::aten::ScalarType> types(nin);
  std::vector<size_t> nbytes(nin);
  for (size_t i = 0; i < nin; ++i) {
    auto tm = meta->input_tensor_meta(i);
    if (!tm.ok()) {
      return fail("input " + std::to_string(i) + " is not a tensor");
    }
    sizes[i].assign(tm->sizes().begin(), tm->sizes().end());
    types[i] = tm->scalar_type();
    nbytes[i] = tm->nbytes();
    const std::string arg = argv[4 + i];
    const size_t colon = arg.rfind(':');
    if (colon == std::string::npos) {
      return fail("input " + std::to_string(i) + ": " + arg + " has no :TYPE");
    }
    const int given = std::atoi(arg.c_str() + colon + 1);
    if (given != static_cast<int>(types[i])) {
      return fail("input " + std::to_string(i) + " is ExecuTorch scalar type " + std::to_string(given) +
                  ", the program takes " + std::to_string(static_cast<int>(types[i])) + "; re-convert the artifact");
    }
    std::ifstream f(arg.substr(0, colon), std::ios::binary);
    blobs[i].assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    blobs[i].resize(blobs[i].size() + 64);  // tail padding: a kernel may read a vector's width past the last sample
    if (blobs[i].size() - 64 != nbytes[i] * static_cast<size_t>(n)) {
      return fail("input " + std::to_string(i) + ": " + std::to_string(blobs[i].size()) + " bytes, expected " +
                  std::to_string(n) + " x " + std::to_string(nbytes[i]) + " (dtype or shape differs from the program's)");
    }
  }
  const double load_s = seconds_since(t0);
  auto t1 = std::chrono::steady_clock::now();
  std::vector<std::ofstream> outs;
  std::vector<std::vector<executorch::aten::SizesType>> shapes;
  std::ostringstream desc;
  for (long s = 0; s < n; ++s) {
    std::vector<TensorPtr> keep;
    std::vector<EValue> inputs;
    for (size_t i = 0; i < nin; ++i) {
      keep.push_back(make_tensor_ptr(sizes[i], blobs[i].data() + s * nbytes[i], types[i]));
      inputs.emplace_back(keep.back());
    }
    auto res = mod.execute("forward", inputs);
    if (!res.ok()) {
      return fail("forward failed on sample " + std::to_string(s) + " (error " +
                  std::to_string(static_cast<int>(res.error())) + ")");
    }
    const auto& values = res.get();
    if (s == 0) {
      for (size_t j = 0; j < values.size(); ++j) {
        outs.emplace_back(outdir + "/out" + std::to_string(j) + ".bin", std::ios::binary);
        if (!outs.back()) {
          return fail("cannot write " + outdir + "/out" + std::to_string(j) + ".bin");
        }
      }
    }
    for (size_t j = 0; j < values.size(); ++j) {
      if (!values[j].isTensor()) {
        return fail("output " + std::to_string(j) + " is not a tensor");
      }
      const auto& t = values[j].toTensor();
      const auto order = t.dim_order();
      for (size_t d = 0; d < order.size(); ++d) {
        if (order[d] != d) {
          return fail("output " + std::to_string(j) + " is not in contiguous dim order (channels-last?); export the"
                      " model with contiguous outputs");
        }
      }
      if (s == 0) {
        shapes.emplace_back(t.sizes().begin(), t.sizes().end());
        desc << "out " << j << " " << static_cast<int>(t.scalar_type());
        for (auto d : t.sizes()) desc << " " << d;
        desc << "\n";
      } else if (!std::equal(shapes[j].begin(), shapes[j].end(), t.sizes().begin(), t.sizes().end())) {
        return fail("output " + std::to_string(j) + " changes shape at sample " + std::to_string(s) +
                    "; edgeport compares outputs of one shape per sample");
      }
      outs[j].write(static_cast<const char*>(t.const_data_ptr()), t.nbytes());
    }
  }
  for (size_t j = 0; j < outs.size(); ++j) {
    outs[j].close();
    if (!outs[j]) {
      return fail("writing " + outdir + "/out" + std::to_string(j) + ".bin failed");
    }
  }
  std::ofstream m(outdir + "/meta.txt");
  m << desc.str() << "hwcap " << getauxval(AT_HWCAP) << " " << getauxval(AT_HWCAP2) << "\n"
    << "seconds " << load_s << " " << seconds_since(t1) << "\n";
  return m.good() ? 0 : fail("could not write " + outdir + "/meta.txt");
}
