"""TFLite Model Metadata with MediaPipe's own writers, and the small shim that makes them import.

Why a shim: ``mediapipe.tasks.python.metadata.metadata`` imports the native module
``mediapipe.tasks.cc.metadata.python._pywrap_metadata_version``, which the PyPI wheels 1.2.2 and 1.2.3 do not ship
(the whole ``mediapipe.tasks.cc`` package is missing), so every metadata writer fails to import. The module has one
function, ``GetMinimumMetadataParserVersion(metadata_flatbuffer) -> str``: the oldest metadata parser that can read
the buffer. :func:`minimum_parser_version` computes it the way the C++ does (``metadata_version.cc``: each schema
member carries the version that introduced it; the answer is the highest one used, "1.0.0" when none), from the
flatbuffer itself. The stub is inserted into ``sys.modules`` under the exact name the writers import, only when the
real module is absent, and nothing else of mediapipe is touched.
"""

from __future__ import annotations

import importlib
import sys
import types

_NATIVE = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"

# Schema members and the metadata parser version that introduced each (tflite-support metadata_version.cc).
_VOCABULARY_FILE = "1.0.1"
_PROCESS_UNITS = "1.1.0"  # input/output process units, BertTokenizer and SentencePiece tokenizer options
_TENSOR_GROUPS = "1.2.0"
_REGEX_TOKENIZER = "1.2.1"
_AUDIO_PROPERTIES = "1.3.0"
_SCANN_INDEX_FILE = "1.4.0"
_FILE_VERSION = "1.4.1"
_CUSTOM_METADATA = "1.5.0"


def minimum_parser_version(buf: bytes) -> str:
    """The oldest metadata parser version that reads this ModelMetadata flatbuffer."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    md = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(bytearray(buf), 0))
    used = ["1.0.0"]

    def files(fs):
        for f in fs or ():
            if f.type == fb.AssociatedFileType.VOCABULARY:
                used.append(_VOCABULARY_FILE)
            if f.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
                used.append(_SCANN_INDEX_FILE)
            if f.version:
                used.append(_FILE_VERSION)

    def units(us, subgraph_level: bool = False):
        for u in us or ():
            if subgraph_level or u.optionsType in (fb.ProcessUnitOptions.BertTokenizerOptions,
                                                   fb.ProcessUnitOptions.SentencePieceTokenizerOptions):
                used.append(_PROCESS_UNITS)  # a tensor's own normalisation / score units date from 1.0.0
            if u.optionsType == fb.ProcessUnitOptions.RegexTokenizerOptions:
                used.append(_REGEX_TOKENIZER)
            opts = u.options
            for attr in ("vocabFile", "sentencePieceModel"):
                files(getattr(opts, attr, None))

    def tensors(ts):
        for t in ts or ():
            files(t.associatedFiles)
            units(t.processUnits)
            if t.content is not None and t.content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                used.append(_AUDIO_PROPERTIES)

    files(md.associatedFiles)
    for sg in md.subgraphMetadata or ():
        files(sg.associatedFiles)
        tensors(sg.inputTensorMetadata)
        tensors(sg.outputTensorMetadata)
        units(sg.inputProcessUnits, True)
        units(sg.outputProcessUnits, True)
        if sg.inputTensorGroups or sg.outputTensorGroups:
            used.append(_TENSOR_GROUPS)
        if getattr(sg, "customMetadata", None):
            used.append(_CUSTOM_METADATA)
    return max(used, key=lambda v: tuple(int(p) for p in v.split(".")))


def install_shim() -> bool:
    """Make ``_pywrap_metadata_version`` importable when the wheel lacks it. Returns True when the stub was put in."""
    try:
        importlib.import_module(_NATIVE)
        return False
    except ImportError:
        pass
    parts = _NATIVE.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the missing parent packages, as empty namespace modules
        name = ".".join(parts[:i])
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            mod = types.ModuleType(name)
            mod.__path__ = []  # a package, so that the child import resolves
            sys.modules[name] = mod
    stub = types.ModuleType(_NATIVE)
    stub.GetMinimumMetadataParserVersion = minimum_parser_version
    stub.__doc__ = "edgeport's stand-in for the native module the mediapipe wheel does not ship (see edge/bundle/metadata.py)"
    sys.modules[_NATIVE] = stub
    parent = sys.modules[".".join(parts[:-1])]
    setattr(parent, parts[-1], stub)
    return True


def _writers():
    install_shim()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    return metadata_writer



def signature_tensor_names(model: bytes) -> dict[str, str]:
    """The .tflite's serving signature: {signature key (the manifest's binding): tensor name}, inputs and outputs."""
    from mediapipe.tasks.metadata import schema_py_generated as sfb

    m = sfb.Model.GetRootAsModel(bytearray(model), 0)
    sg = m.Subgraphs(0)
    out: dict[str, str] = {}
    for i in range(m.SignatureDefsLength()):
        sd = m.SignatureDefs(i)
        for get, n in ((sd.Inputs, sd.InputsLength()), (sd.Outputs, sd.OutputsLength())):
            for j in range(n):
                tm = get(j)
                out[tm.Name().decode()] = sg.Tensors(tm.TensorIndex()).Name().decode()
    return out


def image_classifier_metadata(model: bytes, *, name: str, description: str, version: str, mean, std, gray: bool,
                              labels_file: str | None, author: str = "edgeport") -> tuple[bytes, str]:
    """An image model's metadata (image input with normalisation and colour space, classification output with the
    labels file when given, else a plain feature output). Returns (model bytes with metadata, metadata JSON)."""
    mw = _writers()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    w = mw.MetadataWriter.create(bytearray(model))
    w.add_general_info(name, description)
    w.add_image_input(list(mean), list(std),
                      fb.ColorSpaceType.GRAYSCALE if gray else fb.ColorSpaceType.RGB)
    if labels_file:
        w.add_classification_output(mw.Labels().add_from_file(labels_file))
    else:
        w.add_feature_output("output", "model output")
    try:
        return _finish(w, version, author)
    finally:
        del w


def bert_embedder_metadata(model: bytes, *, name: str, description: str, version: str, vocab_file: str,
                           ids: str, mask: str, segments: str, author: str = "edgeport") -> tuple[bytes, str]:
    """A BERT-style text model's metadata: the three inputs (tensor names), the WordPiece vocabulary, an embedding
    output. Returns (model bytes with metadata, metadata JSON)."""
    mw = _writers()
    w = mw.MetadataWriter.create(bytearray(model))
    w.add_general_info(name, description)
    w.add_bert_text_input(mw.BertTokenizer(vocab_file), ids, mask, segments)
    w.add_feature_output("embedding", "sentence embedding")
    try:
        return _finish(w, version, author)
    finally:
        del w


def _finish(w, version: str, author: str) -> tuple[bytes, str]:
    # add_general_info takes only a name and a description; its GeneralMd has version and author fields too.
    w._general_md.version = version
    w._general_md.author = author
    tflite, js = w.populate()
    # The writer removes its temporary folder in __del__, which fails when it runs at interpreter exit (os is gone).
    # populate() leaves a frame alive (a stored traceback's f_back chain reaches the callers), so no frame may keep
    # the writer: each caller deletes its name too.
    w._temp_folder.cleanup()
    del w
    return bytes(tflite), js



def plain_metadata(model: bytes, *, name: str, description: str, version: str, inputs: list[str], outputs: list[str],
                   labels_file: str | None = None, author: str = "edgeport") -> tuple[bytes, str]:
    """Name, description, version and named feature tensors (a model no MediaPipe task takes); the first output
    gets the labels file when given."""
    mw = _writers()
    w = mw.MetadataWriter.create(bytearray(model))
    w.add_general_info(name, description)
    for n in inputs:
        w.add_feature_input(n, f"input {n}")
    for i, n in enumerate(outputs):
        if i == 0 and labels_file:
            w.add_classification_output(mw.Labels().add_from_file(labels_file), name=n, description=f"output {n}")
        else:
            w.add_feature_output(n, f"output {n}")
    try:
        return _finish(w, version, author)
    finally:
        del w
