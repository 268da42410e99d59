"""The arm64 root filesystem: Debian bookworm's arm64 python3.11 (mmdebstrap) plus the pinned aarch64 wheels of
``requirements-arm64.lock`` (pip, from the host, no emulation), cached under ``$EDGEPORT_CACHE/arm64/<key>/``.

The key hashes the lock, the Debian package list and this module's layout version, so a changed pin builds a new
rootfs and an unchanged one is reused (``python -m edgeport.edge.arm64.rootfs`` or ``./run setup arm64`` builds it
up front). A build writes into ``<key>.part`` and renames it when complete: a folder named by the key is whole.

Running the guest: a private mount namespace (``unshare -m`` as root, ``unshare --mount --map-root-user`` otherwise)
bind-mounts /proc, /sys, /dev, the artifact folder and the job folder into the rootfs, puts an ARM ``/proc/cpuinfo``
that matches qemu's ``-cpu`` over the host's x86 one (ONNX Runtime's cpuinfo segfaults on an x86 cpuinfo, and a
cpuinfo naming a newer core than the emulated one makes it pick instructions qemu then refuses: SIGILL), chroots and
starts the rootfs's python under the static qemu-aarch64 copied into it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "requirements-arm64.lock"
GUEST = HERE / "guest.py"
PTE_RUNNER = HERE / "pte_runner.cpp"
CROSS_CXX = "aarch64-linux-gnu-g++"  # Debian's g++-aarch64-linux-gnu (gcc 12, the rootfs's own libstdc++)
DEBIAN_PACKAGES = ("python3.11", "libpython3.11-stdlib", "libstdc++6", "libgomp1", "ca-certificates")
SUITE = "bookworm"
# qemu-user from Debian trixie (10.0, a static binary that runs on any x86-64 Linux): bookworm's 7.2 lacks
# cortex-a55, neoverse-v1, neoverse-n2 and cortex-a710, and its SME emulation predates later fixes. Extracted from
# Debian's package by mmdebstrap like the rootfs; this host's qemu-aarch64-static when trixie cannot be reached.
QEMU_SUITE = "trixie"
LAYOUT = "2"  # bump when the rootfs layout below changes
SITE = "/opt/edgeport/site"  # wheels, inside the rootfs
QEMU = "qemu-aarch64-static"
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
FIX_TOOLS = "apt-get install qemu-user-static mmdebstrap (or ./run setup arm64)"
FIX_CROSS = "sudo apt-get install g++-aarch64-linux-gnu (or ./run setup arm64)"

# /proc/cpuinfo per qemu CPU model: MIDR fields of the real core, and the Linux hwcap names it reports. "max" has
# no real core; it is described as a Neoverse-V1 (the nearest core with SVE, i8mm and bf16) because ONNX Runtime's
# cpuinfo segfaults on qemu's own "software" implementer. The features the runtimes act on come from the auxiliary
# vector (HWCAP/HWCAP2), which qemu fills in for the emulated model.
_BASE = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_V82 = _BASE + " atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"
_V84 = " sha3 sm3 sm4 sha512 asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp dgh rng"
_V9 = " sve sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svebf16 i8mm bf16 bti"
CPUS: dict[str, tuple[int, int, int, int, str]] = {  # name: (implementer, variant, part, revision, features)
    "cortex-a35": (0x41, 0x0, 0xD04, 2, _BASE),
    "cortex-a53": (0x41, 0x0, 0xD03, 4, _BASE),
    "cortex-a57": (0x41, 0x1, 0xD07, 3, _BASE),
    "cortex-a72": (0x41, 0x0, 0xD08, 3, _BASE),
    "cortex-a55": (0x41, 0x1, 0xD05, 0, _V82),
    "cortex-a76": (0x41, 0x4, 0xD0B, 1, _V82 + " ssbs"),
    "neoverse-n1": (0x41, 0x3, 0xD0C, 1, _V82 + " ssbs"),
    "neoverse-v1": (0x41, 0x1, 0xD40, 1, _V82 + _V84 + " sve svei8mm svebf16 i8mm bf16"),
    "neoverse-n2": (0x41, 0x0, 0xD49, 3, _V82 + _V84 + _V9),
    "cortex-a710": (0x41, 0x2, 0xD47, 0, _V82 + _V84 + _V9),
    "a64fx": (0x46, 0x1, 0x001, 0, _V82 + " sve"),
    "max": (0x41, 0x1, 0xD40, 1, _V82 + " sha3 sm3 sm4 sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg"
            " dcpodp sve sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm"
            " svebf16 i8mm bf16 dgh rng bti mte sme"),
}


def cache_root() -> Path:
    base = os.environ.get("EDGEPORT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "edgeport") / "arm64"


def key() -> str:
    h = hashlib.sha256(LOCK.read_bytes())
    h.update(" ".join((SUITE, *DEBIAN_PACKAGES, QEMU_SUITE, LAYOUT)).encode())
    return h.hexdigest()[:16]


def rootfs_path() -> Path:
    return cache_root() / key()


def is_built() -> bool:
    return (rootfs_path() / ".edgeport-complete").exists()


def pins() -> dict[str, str]:
    out = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, ver = line.split("==")
            out[name.strip().lower().replace("_", "-")] = ver.strip()
    return out


def missing_tools() -> str | None:
    """None when this machine can build and run the rootfs; else one line: what is missing and the command."""
    need = [t for t in (QEMU, "unshare", "chroot") if shutil.which(t) is None]
    if not is_built() and shutil.which("mmdebstrap") is None:
        need.append("mmdebstrap")
    if need:  # the fix first: the terminal table shows a skipped row's first 100 characters
        extra = " util-linux coreutils" if {"unshare", "chroot"} & set(need) else ""
        return f"needs qemu-user: sudo {FIX_TOOLS.replace('mmdebstrap', 'mmdebstrap' + extra, 1)}; not found: {', '.join(need)}"
    if os.geteuid() != 0:
        if not _userns():
            return ("no root and no unprivileged user namespaces here (the guest needs a private mount namespace);"
                    " run as root, or enable them: sudo sysctl -w kernel.unprivileged_userns_clone=1")
    return None


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    env = os.environ.get("EDGEPORT_DEBIAN_MIRROR")
    if env:
        return env
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for m in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            uri = m.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def _say(msg: str, progress) -> None:
    (progress or (lambda s: print(f"[edgeport] {s}", file=sys.stderr, flush=True)))(msg)


def ensure(progress=None) -> Path:
    """The cached rootfs, built now if missing (a minute or two; progress lines through ``progress``). Safe to call
    from several processes at once: one builds, the others wait for it."""
    from edgeport.errors import EdgeportError

    root = rootfs_path()
    if is_built():
        if (root / FALLBACK).exists():  # built while Debian trixie was unreachable: try its qemu again, once a run
            with open(root.parent / f"{root.name}.lock", "w") as lk:
                fcntl.flock(lk, fcntl.LOCK_EX)
                if (root / FALLBACK).exists():
                    _install_qemu(root, debian_mirror(), progress)
                    _cpus_of.cache_clear()
                    _cached_version.cache_clear()
        return root
    why = missing_tools()
    if why:
        raise EdgeportError(why)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if is_built():
            return root
        part = root.parent / f"{root.name}.part"
        shutil.rmtree(part, ignore_errors=True)
        t0 = time.monotonic()
        try:
            _build(part, progress)
        except BaseException:
            shutil.rmtree(part, ignore_errors=True)
            raise
        (part / ".edgeport-complete").write_text(f"built in {time.monotonic() - t0:.1f} s\n")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(part, root)
        _say(f"arm64: rootfs ready at {root} ({time.monotonic() - t0:.0f} s)", progress)
    return root


def _run(cmd: list[str], what: str, timeout: float = 900) -> None:
    from edgeport.errors import EdgeportError

    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgeportError(f"arm64 rootfs: {what} did not finish in {timeout:.0f} s (a mirror that does not answer?);"
                            " run `./run setup arm64` again") from None
    if p.returncode != 0:
        tail = " ".join((p.stderr or p.stdout).strip().splitlines()[-3:])[-400:]
        raise EdgeportError(f"arm64 rootfs: {what} failed (exit {p.returncode}): {tail}; fix it and run"
                            " `./run setup arm64` again")


def _build(part: Path, progress) -> None:
    mirror = debian_mirror()
    _say(f"arm64: building the rootfs (Debian {SUITE} arm64 {', '.join(DEBIAN_PACKAGES[:1])} from {mirror},"
         f" then {len(pins())} pinned aarch64 wheels) into {part.parent}", progress)
    t = time.monotonic()
    _run(["mmdebstrap", "--quiet", "--variant=extract", "--architectures=arm64",
          f"--include={','.join(DEBIAN_PACKAGES)}", SUITE, str(part), mirror], "mmdebstrap")
    _say(f"arm64: [1/3] Debian arm64 base extracted ({time.monotonic() - t:.0f} s)", progress)
    t = time.monotonic()
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--target",
           str(part / SITE.lstrip("/")), "-r", str(LOCK)]
    for p in PLATFORMS:
        cmd[4:4] = ["--platform", p]
    _run(cmd, "pip install of the aarch64 wheels")
    _say(f"arm64: [2/3] aarch64 wheels installed ({time.monotonic() - t:.0f} s)", progress)
    _install_qemu(part, mirror, progress)
    for d in ("proc", "sys", "dev", "tmp", "work/artifact", "work/job"):
        (part / d).mkdir(parents=True, exist_ok=True)
    if shutil.which(CROSS_CXX):  # else built on the first .pte run, once the cross compiler is there
        try:
            _compile_pte_runner(part, progress)
        except Exception as e:  # noqa: BLE001 - .onnx/.tflite do not need it; ensure_pte_runner tries again, saying why
            _say(f"arm64: the .pte runner did not build ({' '.join(str(e).split())[:200]}); .onnx and .tflite run",
                 progress)


FALLBACK = ".edgeport-host-qemu"  # marker: the rootfs runs this host's qemu for now; the next use tries trixie again


def _install_qemu(part: Path, mirror: str, progress) -> None:
    """qemu-aarch64 into the rootfs: Debian trixie's (extracted, 16 MB kept), else this host's, marked so that a
    later use tries trixie again (a passing network failure does not pin the old qemu to this rootfs)."""
    dst = part / "usr/bin" / QEMU
    t = time.monotonic()
    tmp = part.parent / f"{part.name}.qemu"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _run(["mmdebstrap", "--quiet", "--variant=extract", "--architectures=amd64", "--include=qemu-user-static",
              QEMU_SUITE, str(tmp), mirror], f"extracting qemu-user-static from Debian {QEMU_SUITE}")
        shutil.copy2(tmp / "usr/bin/qemu-aarch64", str(dst) + ".part")
        os.replace(str(dst) + ".part", dst)
        (part / FALLBACK).unlink(missing_ok=True)
        _say(f"arm64: [3/3] qemu {_version_of(dst)} from Debian {QEMU_SUITE} ({time.monotonic() - t:.0f} s)", progress)
    except Exception as e:  # noqa: BLE001 - the host's qemu still runs every core it knows
        if not dst.exists():
            shutil.copy2(shutil.which(QEMU), dst)
        (part / FALLBACK).write_text(" ".join(str(e).split())[:400] + "\n")
        _say(f"arm64: Debian {QEMU_SUITE}'s qemu not available ({' '.join(str(e).split())[:160]}); using this host's"
             f" qemu {_version_of(dst)}", progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- the .pte runner
def _compile_args(root: Path, out: str) -> list[str]:
    """The cross-compile of pte_runner.cpp against the ExecuTorch wheel's own aarch64 headers and libraries (the
    flags its executorch-config.cmake gives C++ consumers); the kernel and delegate libraries register themselves
    when loaded, so they are linked whether or not a symbol is used."""
    et = root / SITE.lstrip("/") / "executorch"
    return [CROSS_CXX, "-std=c++17", "-O2", "-w", "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED",
            f"-I{et / 'include'}", f"-I{et / 'include/executorch/runtime/core/portable_type/c10'}", str(PTE_RUNNER),
            "-o", out, f"-L{et / 'lib'}", "-Wl,--no-as-needed", "-lexecutorch", "-lexecutorch_kernels_optimized",
            "-lexecutorch_kernels_quantized", "-lexecutorch_backend_xnnpack", "-lexecutorch_threadpool",
            "-Wl,--as-needed", f"-Wl,-rpath,{SITE}/executorch/lib"]


@functools.lru_cache(maxsize=1)
def _cross_version() -> str:
    p = subprocess.run([CROSS_CXX, "-dumpfullversion"], capture_output=True, text=True) if shutil.which(CROSS_CXX) else None
    return p.stdout.strip() if p and p.returncode == 0 else ""


def pte_runner_name() -> str:
    """The runner's file name in the rootfs, keyed by its source, its compile line and the compiler's version: any of
    them changed, it is compiled anew."""
    h = hashlib.sha256(PTE_RUNNER.read_bytes())
    args = [a if a != str(PTE_RUNNER) else PTE_RUNNER.name for a in _compile_args(Path("/"), "-")]  # not the checkout's path
    h.update(" ".join([*args, _cross_version()]).encode())
    return "pte_runner-" + h.hexdigest()[:12]


def pte_runner_missing() -> str | None:
    """None when the .pte runner is built or can be; else one line with the fix."""
    if is_built() and (rootfs_path() / "opt/edgeport/bin" / pte_runner_name()).exists():
        return None
    if not PTE_RUNNER.is_file():
        return f"this edgeport install lacks {PTE_RUNNER.name} (the .pte runner's source); reinstall edgeport"
    if shutil.which(CROSS_CXX) is None:
        return f"needs the aarch64 cross compiler to build the .pte runner: {FIX_CROSS}"
    major = _cross_version().split(".")[0]
    if major.isdigit() and int(major) > 12:  # its libstdc++ / glibc symbols would be newer than bookworm's
        return (f"{CROSS_CXX} is gcc {_cross_version()}; the arm64 rootfs is Debian {SUITE} (gcc 12, glibc 2.36), whose"
                f" libraries cannot load what it builds: install {SUITE}'s g++-aarch64-linux-gnu")
    return None


def _compile_pte_runner(root: Path, progress) -> Path:
    out = root / "opt/edgeport/bin" / pte_runner_name()
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    _run(_compile_args(root, str(out) + ".part"), "compiling the .pte runner", timeout=300)
    os.replace(str(out) + ".part", out)
    _say(f"arm64: .pte runner compiled against ExecuTorch's aarch64 libraries ({time.monotonic() - t:.0f} s)", progress)
    return out


def ensure_pte_runner(progress=None) -> str:
    """The .pte runner's path inside the rootfs, compiled now if missing (a few seconds)."""
    from edgeport.errors import EdgeportError

    root = ensure(progress)
    name = pte_runner_name()
    if not (root / "opt/edgeport/bin" / name).exists():
        why = pte_runner_missing()
        if why:
            raise EdgeportError(why)
        with open(root.parent / f"{root.name}.lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            if not (root / "opt/edgeport/bin" / name).exists():
                _compile_pte_runner(root, progress)
    return f"/opt/edgeport/bin/{name}"


def cpuinfo_text(cpu: str, n: int = 1) -> str:
    """An aarch64 /proc/cpuinfo for qemu's ``-cpu`` model ``cpu`` (properties such as ``max,sme=off`` keep the
    model's identity)."""
    model = cpu.split(",")[0]
    impl, var, part, rev, feats = CPUS[model]
    for prop in cpu.split(",")[1:]:
        name, _, val = prop.partition("=")
        if val == "off":
            feats = " ".join(f for f in feats.split() if not f.startswith(name))
    block = (f"BogoMIPS\t: 50.00\nFeatures\t: {feats}\nCPU implementer\t: {impl:#04x}\nCPU architecture: 8\n"
             f"CPU variant\t: {var:#x}\nCPU part\t: {part:#05x}\nCPU revision\t: {rev}\n\n")
    return "".join(f"processor\t: {i}\n{block}" for i in range(n))


def qemu_binary() -> str:
    """The qemu that runs the guests: the rootfs's own once built, else this host's."""
    own = rootfs_path() / "usr/bin" / QEMU
    return str(own) if is_built() and own.exists() else (shutil.which(QEMU) or QEMU)


def qemu_cpus() -> list[str]:
    """The CPU models the guests' qemu emulates (``-cpu help``) that edgeport has a cpuinfo for."""
    return _cpus_of(qemu_binary())


@functools.lru_cache(maxsize=None)
def _cpus_of(binary: str) -> list[str]:
    p = subprocess.run([binary, "-cpu", "help"], capture_output=True, text=True)
    have = {line.strip() for line in p.stdout.splitlines()[1:]}
    return [c for c in CPUS if c in have]


def _version_of(binary) -> str:
    p = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    m = re.search(r"version (\S+)", p.stdout)
    return m.group(1) if m else "?"


def qemu_version() -> str:
    return _cached_version(qemu_binary())


_cached_version = functools.lru_cache(maxsize=None)(_version_of)


@functools.lru_cache(maxsize=1)
def _userns() -> bool:
    """Whether a user namespace can be made here (then the guest's root is no one on the host)."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "true"],
                           capture_output=True)
    return probe.returncode == 0


def guest_command(root: Path, cpu: str, artifact_dir: Path, job_dir: Path, args: list[str],
                  program: str | None = None) -> list[str]:
    """The host command that runs ``python3.11 guest.py ARGS`` (or the rootfs's aarch64 ``program`` with ARGS) in the
    rootfs on emulated ``cpu``, seeing the artifact folder at /work/artifact (read-only) and the job folder at
    /work/job.

    The sandbox: a user namespace (the guest's root maps to the caller, with no host privilege) where one can be
    made, a private mount and PID namespace with a fresh /proc (no host processes, no host environments), the rootfs
    itself read-only (nothing a guest does outlives it: not the cached rootfs, not its qemu, not pte_runner), /sys
    read-only with one CPU listed (the rows say threads 1; the runtimes size their pools from it), /dev holding only
    null, zero, random and urandom, and /tmp a small tmpfs."""
    cpuinfo = job_dir / "cpuinfo"
    cpuinfo.write_text(cpuinfo_text(cpu))
    (job_dir / "cpulist").write_text("0\n")
    shutil.copy2(GUEST, job_dir / "guest.py")  # this checkout's guest, not the one the rootfs was built with
    r, q = shlex.quote(str(root)), shlex.quote
    script = " && ".join([
        f"mount --bind {r} {r}", f"mount -o remount,bind,ro {r}",
        f"mount -t proc proc {r}/proc", f"mount --bind {q(str(cpuinfo))} {r}/proc/cpuinfo",
        f"mount --rbind /sys {r}/sys", f"mount -o remount,bind,ro {r}/sys",
        *[f"mount --bind {q(str(job_dir / 'cpulist'))} {r}/sys/devices/system/cpu/{f}"
          for f in ("possible", "present", "online")],
        f"mount -t tmpfs -o size=1m,mode=755 tmpfs {r}/dev",
        *[f"touch {r}/dev/{d} && mount --bind /dev/{d} {r}/dev/{d}" for d in ("null", "zero", "random", "urandom")],
        f"mount -t tmpfs -o size=256m tmpfs {r}/tmp",
        f"mount --bind {q(str(artifact_dir))} {r}/work/artifact", f"mount -o remount,bind,ro {r}/work/artifact",
        f"mount --bind {q(str(job_dir))} {r}/work/job",
        "exec env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 PYTHONPATH=" + SITE + " PYTHONDONTWRITEBYTECODE=1"
        f" {shutil.which('chroot') or '/usr/sbin/chroot'} {r} /usr/bin/{QEMU} -cpu {q(cpu)} "
        + (program or "/usr/bin/python3.11 /work/job/guest.py") + " " + " ".join(map(q, args)),
    ])
    ns = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private"]
    if _userns() or os.geteuid() != 0:
        ns[1:1] = ["--user", "--map-root-user"]
    return [*ns, "sh", "-c", script]


def main() -> int:
    from edgeport.errors import EdgeportError

    try:
        t0 = time.monotonic()
        had = is_built()
        root = ensure()
        print(f"arm64 rootfs {'reused' if had else 'built'}: {root} ({time.monotonic() - t0:.1f} s)")
        why = pte_runner_missing()
        print(f".pte on arm64: {why}" if why else f".pte runner: {root}{ensure_pte_runner()}")
    except EdgeportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
