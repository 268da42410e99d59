"""Declared inputs bound to a PyTorch module's ``forward()`` by name, and outputs checked to be tensors.

Every torch target (torch.export for .pte, litert-torch for .tflite, torch.onnx for .onnx, PT2E for int8) calls the
module with the inputs positionally, in the order they were declared. When the declared names are not the first
parameters of ``forward()`` in that order, the module is wrapped once, at load, in :class:`KeywordCall`, whose
``forward`` takes the inputs positionally and calls the model with keywords: one wrapper seen by every exporter and
by the float reference, so all targets agree and parameters in between keep their defaults.
"""

from __future__ import annotations

import inspect
import keyword

from .errors import InputError

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def forward_parameters(model) -> list[inspect.Parameter] | None:
    """``forward()``'s parameters (without self), or None when Python cannot tell (a C++ or scripted forward)."""
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return None


def _describe(params: list[inspect.Parameter]) -> str:
    def one(p):
        if p.kind is p.VAR_POSITIONAL:
            return f"*{p.name}"
        if p.kind is p.VAR_KEYWORD:
            return f"**{p.name}"
        return p.name if p.default is p.empty else f"{p.name}=..."

    return ", ".join(one(p) for p in params)


def bind_inputs(model, names: list[str], where: str):
    """The module to call with the declared inputs positionally: ``model`` itself when positions and names agree,
    else a :class:`KeywordCall` around it. Raises InputError naming ``forward()``'s parameters when a declared name
    is not one of them (and forward takes no ``**kwargs``).

    When no declared name is a parameter at all (``--input x`` for ``forward(self, input)``, the usual single-input
    case), the inputs stay bound by position: the names are then the user's own labels, not forward's; the note
    returned says so. Returns ``(module, note or None)``."""
    params = forward_parameters(model)
    if params is None or not names:
        return model, None
    by_name = {p.name: p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    positional = [p.name for p in params if p.kind in _POSITIONAL]
    if positional[: len(names)] == list(names):
        return model, None  # positions and names agree: nothing to change
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    cls = type(model).__name__
    if not any(n in by_name for n in names) and not takes_kwargs:
        return model, (f"inputs {', '.join(names)} bound to {cls}.forward({_describe(params)}) by position: none of"
                       " them is a parameter name")
    unknown = [n for n in names if n not in by_name and not takes_kwargs]
    if unknown:
        raise InputError(f"{where}: --input {', '.join(repr(n) for n in unknown)} "
                         f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of"
                         f" {cls}.forward({_describe(params)}); name each --input after a forward() parameter"
                         " (inputs are passed by name)")
    posonly = [n for n in names if n in by_name and by_name[n].kind is inspect.Parameter.POSITIONAL_ONLY]
    if posonly:
        raise InputError(f"{where}: {cls}.forward({_describe(params)}) takes {', '.join(posonly)} by position only;"
                         " declare the inputs in forward()'s order")
    missing = [p.name for p in params if p.kind in _POSITIONAL and p.default is p.empty and p.name not in names]
    if missing:
        raise InputError(f"{where}: {cls}.forward({_describe(params)}) needs {', '.join(missing)}, which no --input"
                         " declares; add --input for each required parameter")
    return KeywordCall(model, names), None


def KeywordCall(model, names):  # noqa: N802 - reads as the module it builds
    """A module whose ``forward`` takes ``names`` positionally, in that order, and calls ``model`` with them as
    keywords. Its parameters carry the declared names where they are identifiers, so that an exported graph's
    placeholders read as the user's inputs; ``forward`` is defined on a class of its own (exporters read it from
    the class)."""
    import torch

    names = tuple(names)
    args = [n if n.isidentifier() and not keyword.iskeyword(n) and n not in ("self", "model") else f"arg{i}"
            for i, n in enumerate(names)]
    code = (f"def forward(self, {', '.join(args)}):\n"
            f"    return self.model(**{{{', '.join(f'{n!r}: {a}' for n, a in zip(names, args))}}})\n")
    ns: dict = {}
    exec(code, ns)  # noqa: S102 - built above from identifiers and repr'd names only

    class _KeywordCall(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.names = names

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:  # config, generation settings ...: the wrapped model's
                return getattr(super().__getattr__("model"), name)

    cls = type("KeywordCall", (_KeywordCall,), {"forward": ns["forward"], "__module__": __name__})
    return cls()


def check_output(path: str, value) -> None:
    """An output that is not a tensor (a cache, a custom object) is one line naming it and the fix."""
    raise InputError(f"output {path!r} is a {type(value).__name__}, not a tensor; only tensor outputs convert: wrap the"
                     " model in a module whose forward returns the tensors you need (a Hugging Face model: pass"
                     " use_cache=False, or return_dict=False and pick the tensors)")
