"""A PyTorch source file read as a design with Python's ``ast``: the file is parsed, never run or imported.

Recognised: ``model = nn.Sequential(...)`` (any name; ``model`` or ``net`` first, else the last one), as the notes
write it and as ``layerstudio export`` writes it (with its ``Residual``/``Branches`` groups and ``INPUT_SHAPE``),
and ``class Net(nn.Module)`` whose ``__init__`` sets ``self.name = nn.X(...)`` and whose ``forward`` is a chain of
``self.name(x)``, ``F.relu(x)``-style calls and ``x.view(x.size(0), -1)``. Each ``nn.X(...)`` call's arguments must
be literals (``ast.literal_eval``); they are bound to the PyTorch class's own signature by constructing it on the
meta device (only torch's constructor runs, and no weights are allocated), then read into a layer by
``engine.importing.mapping``. A call that cannot be read is left out and listed with its line and the reason.
"""
from __future__ import annotations

import ast
import inspect
import io
import operator
import re
import tokenize
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import cast

import torch
from torch import nn

from engine import blocks, shape_modules
from engine.controls import control
from engine.errors import SpecError
from engine.files import read_text
from engine.importing.mapping import (
    FUNCTIONAL,
    INPUT_ARGUMENTS,
    KIND_CLASSES,
    Hint,
    Imported,
    Mapping,
    Note,
    UnmappableError,
    finish,
    layers_from_modules,
    no_kind,
)
from engine.layers import KINDS, LayerKind
from engine.spec import MAX_GROUP_DEPTH, check_input_shape, coerce_params

SOURCE_SUFFIXES = (".py",)
INPUT_SHAPE_SETTING = "import.input_shape"  # named in messages the way the front end names it (engine.controls)
MAX_SOURCE_BYTES = 5_000_000
CONTAINERS = (nn.Sequential, blocks.Residual, blocks.Branches)
# Classes the app's exported script defines itself: read as engine's own, never from the file.
ENGINE_CLASSES = {cls.__name__: cls for cls in (*CONTAINERS[1:], *KIND_CLASSES) if cls.__module__ in
                  (blocks.__name__, shape_modules.__name__)}
FUNCTION_MODULES = ("F", "torch", "torch.nn.functional", "nn.functional")
DROPPED_KEYWORDS = ("device", "dtype")  # where the weights live is not part of a design
MODEL_NAMES = ("model", "net")
SHOWN = 60  # characters of a call quoted in a note


def import_source(path: str | Path, input_shape: tuple[int, ...] | None = None) -> Imported:
    """The design in the PyTorch file at ``path``; SpecError when it holds no model this can read."""
    name = Path(path).name
    return source_design(read_text(path, "PyTorch file", MAX_SOURCE_BYTES, SpecError), name, input_shape)


def source_design(text: str, name: str = "the source", input_shape: tuple[int, ...] | None = None) -> Imported:
    """The design in PyTorch source ``text`` (named ``name`` in messages)."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise SpecError(f"{name} is not valid Python (line {exc.lineno}: {exc.msg}): fix it and import again") \
            from None
    except (RecursionError, MemoryError, ValueError):
        raise SpecError(f"{name} nests too deeply for Python to read: simplify it") from None
    reader = _Reader(text, tree)
    modules = reader.model(name)
    shape = input_shape or reader.input_shape()
    if shape is None:
        raise SpecError(f"{name} does not say the shape of one input sample: give it with "
                        f"{control(INPUT_SHAPE_SETTING)}, e.g. 1x28x28")
    try:
        check_input_shape(list(shape))
    except SpecError as exc:
        raise SpecError(f"{name}: {exc}") from None
    mapping = Mapping(reader.locate, reader.notes, unread=reader.unread, hints=reader.hints,
                      frozen=reader.frozen_modules())
    imported = finish(layers_from_modules(modules, mapping), tuple(shape), mapping, name)
    return replace(imported, notes=tuple(sorted(imported.notes, key=_line)))


class _Reader:
    """Reads one parsed file: the names it imports torch.nn under, the model's calls into meta modules, the notes."""

    def __init__(self, text: str, tree: ast.Module):
        self.text, self.tree = text, tree
        self.places: dict[int, tuple[str, str]] = {}  # id(module) -> (where, what)
        self.notes: list[Note] = []
        self.unread: dict[int, set[str]] = {}  # id(module) -> input widths not written as literals
        self.hints: dict[int, Hint] = {}  # id(module) -> the id (and copies) its comment gives
        self.comments = _comments(text)
        self.calls_on_line = Counter(node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call))
        self.model_name, self.root = "", cast(nn.Module | None, None)
        self.imported: dict[str, str] = {}  # a bare name -> the torch.nn class it was imported as
        self.nn_names = {"nn", "torch.nn"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("torch.nn", "torch.nn.modules"):
                self.imported.update({alias.asname or alias.name: alias.name for alias in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module == "torch":
                self.nn_names.update(alias.asname or "nn" for alias in node.names if alias.name == "nn")
            elif isinstance(node, ast.Import):
                self.nn_names.update(alias.asname for alias in node.names if alias.name == "torch.nn" and alias.asname)

    # -- where things are
    def locate(self, module: nn.Module) -> tuple[str, str]:
        return self.places.get(id(module), ("the model", type(module).__name__))

    def quote(self, node: ast.AST) -> str:
        text = " ".join((ast.get_source_segment(self.text, node) or ast.unparse(node)).split())
        if isinstance(node, ast.Call) and self.resolve(node.func) in CONTAINERS:
            text = text[:text.index("(") + 1] + "...)" if "(" in text else text
        return text if len(text) <= SHOWN else text[:SHOWN - 4] + " ...)"

    def note(self, node: ast.AST, reason: str) -> None:
        self.notes.append(Note(f"line {getattr(node, 'lineno', '?')}", self.quote(node), reason))

    # -- names
    def resolve(self, func: ast.AST) -> type | None:
        """The class a call's function names (``nn.Conv2d``, ``torch.nn.Conv2d``, ``Conv2d`` imported from
        torch.nn, or one of engine's block classes), or None."""
        dotted = _dotted(func)
        if dotted is None:
            return None
        prefix, _, name = dotted.rpartition(".")
        if prefix in self.nn_names:
            cls = getattr(nn, name, None)
        elif not prefix and name in self.imported:
            cls = getattr(nn, self.imported[name], None)
        elif not prefix:
            cls = ENGINE_CLASSES.get(name)
        else:
            cls = None
        return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else None

    # -- the model
    def model(self, name: str) -> list[nn.Module]:
        """The model's top-level modules (a top-level Sequential's children)."""
        assigned = [(node.targets[0].id, node.value) for node in self.tree.body if isinstance(node, ast.Assign)
                    and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Call)]
        classes = {node.name: node for node in self.tree.body if isinstance(node, ast.ClassDef)
                   and any(self._is_module_base(base) for base in node.bases)}
        calls = [(target, call) for target, call in assigned if self.resolve(call.func) is not None]
        if calls:
            target, call = next(((target, call) for wanted in MODEL_NAMES for target, call in calls
                                 if target == wanted), calls[-1])
            module = self.module(call, 0)
            self.model_name, self.root = target, module
            if module is None:
                raise SpecError(f"{name}: {self.notes[-1].sentence()}")
            return list(module) if type(module) is nn.Sequential else [module]
        made = [call.func.id for _, call in assigned if isinstance(call.func, ast.Name) and call.func.id in classes]
        if made or classes:
            cls = classes[made[-1]] if made else list(classes.values())[-1]
            return self.class_model(cls, name)
        raise SpecError(f"{name} holds no model LayerStudio can read: write it as model = nn.Sequential(...) "
                        "or as a class deriving from nn.Module")

    def input_shape(self) -> tuple[int, ...] | None:
        """The file's ``INPUT_SHAPE = (1, 28, 28)`` (as the exported script writes it), if it has one."""
        for node in self.tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id == "INPUT_SHAPE"):
                try:
                    shape = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    return None
                return tuple(shape) if isinstance(shape, (tuple, list)) else None
        return None

    def _is_module_base(self, base: ast.AST) -> bool:
        dotted = _dotted(base)
        return dotted is not None and (dotted.rpartition(".")[0] in self.nn_names and dotted.endswith(".Module")
                                       or self.imported.get(dotted) == "Module")

    def module(self, node: ast.AST, depth: int) -> nn.Module | None:
        """The meta module a call builds, or None with a note saying why not."""
        try:
            if depth > MAX_GROUP_DEPTH:
                raise UnmappableError(f"groups nest more than {MAX_GROUP_DEPTH} deep here: flatten some of them")
            if not isinstance(node, ast.Call):
                raise UnmappableError("this is not a layer call such as nn.Conv2d(1, 6, kernel_size=5)")
            cls = self.resolve(node.func)
            if cls is None:
                raise UnmappableError("the importer reads torch.nn layers (nn.X(...)) only, and never runs the "
                                      "file's own code")
            module = self._container(cls, node, depth) if cls in CONTAINERS else self._layer(cls, node)
        except UnmappableError as exc:
            self.note(node, str(exc))
            return None
        self.places[id(module)] = (f"line {node.lineno}", self.quote(node))
        comment = HINT.fullmatch(self.comments.get(node.lineno, ""))
        if comment and self.calls_on_line[node.lineno] == 1:
            self.hints[id(module)] = Hint(comment["id"], int(comment["copies"] or 0))
        return module

    def frozen_modules(self) -> set[int]:
        """The modules frozen by top-level ``model[3].body[0].requires_grad_(False)`` lines (as the exported script
        writes them), found by walking the model read here, never by running the line."""
        frozen = set()
        for node in self.tree.body:
            call = node.value if isinstance(node, ast.Expr) else None
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "requires_grad_" and len(call.args) == 1
                    and isinstance(call.args[0], ast.Constant) and call.args[0].value is False):
                continue
            module = self._walk_to(call.func.value)
            if module is not None:
                frozen.add(id(module))
        return frozen

    def _walk_to(self, node: ast.AST) -> nn.Module | None:
        """The module of the read model at ``model[3].body[0]``, or None."""
        if isinstance(node, ast.Name):
            return self.root if node.id == self.model_name else None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and type(node.slice.value) is int:
            parent = self._walk_to(node.value)
            children = list(parent.children()) if parent is not None else []
            return children[node.slice.value] if 0 <= node.slice.value < len(children) else None
        if isinstance(node, ast.Attribute) and node.attr in ("body", "shortcut", "branches", "activation"):
            parent = self._walk_to(node.value)
            child = getattr(parent, node.attr, None) if parent is not None else None
            return child if isinstance(child, nn.Module) else None
        return None

    def _container(self, cls: type, node: ast.Call, depth: int) -> nn.Module:
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
            raise UnmappableError("*args and **kwargs are not read: write each layer out")
        if cls is nn.Sequential:
            if node.keywords:
                raise UnmappableError("nn.Sequential takes its layers only")
            return nn.Sequential(*self._children(node.args, depth))
        try:
            bound = inspect.signature(cls).bind(*node.args, **{k.arg: k.value for k in node.keywords if k.arg})
        except TypeError as exc:
            raise UnmappableError(f"the call does not fit {cls.__name__}{inspect.signature(cls)}: {exc}") from None
        if cls is blocks.Branches:
            merge = self._literal(bound.arguments.get("merge", ast.Constant("concat")), "merge")
            return blocks.Branches(*self._children(bound.arguments.get("branches", ()), depth), merge=merge)
        parts = {}
        for part in ("body", "shortcut", "activation"):
            module = self.module(bound.arguments[part], depth + 1)
            if module is None:
                raise UnmappableError(f"its {part} cannot be read (see the note on line "
                                      f"{bound.arguments[part].lineno})")
            parts[part] = module
        return blocks.Residual(**parts)

    def _children(self, nodes, depth: int) -> list[nn.Module]:
        return [module for module in (self.module(child, depth + 1) for child in nodes) if module is not None]

    def _layer(self, cls: type, node: ast.Call, extra: tuple = ()) -> nn.Module:
        """``cls`` built on the meta device from the call's literal arguments (after ``extra``, already read). An
        input width (in_features, in_channels, ...) that is not a literal is not needed: the design takes it from
        the shapes, so a stand-in builds the module and the check against the shapes skips it."""
        if cls not in KIND_CLASSES:
            raise UnmappableError(no_kind(cls))
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
            raise UnmappableError("*args and **kwargs are not read: write each argument out")
        keywords = {k.arg: k.value for k in node.keywords if k.arg and k.arg not in DROPPED_KEYWORDS}
        signature = inspect.signature(cls)
        try:
            bound = signature.bind(*extra, *node.args, **keywords)
        except TypeError as exc:
            raise UnmappableError(f"the arguments do not fit {_class_name(cls)}: {exc}") from None
        unread = set()
        for name, value in bound.arguments.items():
            if not isinstance(value, ast.AST):
                continue
            try:
                bound.arguments[name] = self._literal(value, name)
            except UnmappableError:
                if name not in INPUT_ARGUMENTS:
                    raise
                bound.arguments[name] = 1
                unread.add(name)
        _check_counts(KINDS[KIND_CLASSES[cls]], bound.arguments)
        try:
            with torch.device("meta"):
                module = cls(*bound.args, **bound.kwargs)
        except Exception as exc:  # noqa: BLE001 - PyTorch's own refusal of the values, as a sentence
            raise UnmappableError(f"PyTorch refuses these arguments: {_first_line(exc)}") from None
        if unread:
            self.unread[id(module)] = unread
        return module

    def _literal(self, node: ast.AST, what: str):
        """A literal's value (numbers, strings, tuples, True/False/None), or whole-number arithmetic on them such
        as ``16 * 5 * 5``; nothing is run."""
        try:
            return _constant(node) if _is_constant(node) else ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise UnmappableError(f"{what} ({self.quote(node)}) is not a literal; the importer reads numbers, "
                                  "strings, tuples and True/False/None, and never runs code: write the value out") \
                from None

    # -- class Net(nn.Module)
    def class_model(self, cls: ast.ClassDef, name: str) -> list[nn.Module]:
        """A class's layers in the order its forward calls them."""
        methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
        if "forward" not in methods or "__init__" not in methods:
            raise SpecError(f"{name}: class {cls.name} needs an __init__ and a forward to be read")
        layers: dict[str, nn.Module | None] = {}
        for statement in methods["__init__"].body:
            assigned = isinstance(statement, ast.Assign) and len(statement.targets) == 1
            target = _self_attribute(statement.targets[0]) if isinstance(statement, ast.Assign) and assigned else None
            if target is not None and isinstance(statement, ast.Assign):
                layers[target] = self.module(statement.value, 0)
            elif not _is_super_init(statement):
                self.note(statement, "only self.name = nn.X(...) assignments are read in __init__")
        forward = methods["forward"]
        if len(forward.args.args) != 2:
            raise SpecError(f"{name}: {cls.name}.forward must take one input (forward(self, x)) to be read")
        current = forward.args.args[1].arg
        modules: list[nn.Module] = []
        for statement in forward.body:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                    and isinstance(statement.targets[0], ast.Name):
                expression, target = statement.value, statement.targets[0].id
            elif isinstance(statement, ast.Return) and statement.value is not None:
                expression, target = statement.value, current
            else:
                self.note(statement, "forward is read as a chain of x = layer(x) steps; this statement is not one")
                continue
            steps = self._steps(expression, current, layers)
            if steps is None:
                continue
            modules += steps
            current = target
            if isinstance(statement, ast.Return):
                break
        return modules

    def _steps(self, node: ast.AST, current: str, layers: dict) -> list[nn.Module] | None:
        """The modules an expression of the current value applies, innermost first; None (noted) if not a chain."""
        if isinstance(node, ast.Name) and node.id == current:
            return []
        if isinstance(node, ast.Call):
            attribute = _self_attribute(node.func)
            function = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if attribute is not None and len(node.args) == 1 and not node.keywords:
                inner = self._steps(node.args[0], current, layers)
                module = layers.get(attribute)
                if inner is not None and module is None and attribute not in layers:
                    self.note(node, f"self.{attribute} is not a layer set in __init__")
                return None if inner is None else inner + ([module] if module is not None else [])
            owner = _dotted(node.func.value) if isinstance(node.func, ast.Attribute) else None
            if function in FUNCTIONAL and node.args and owner in FUNCTION_MODULES:
                inner = self._steps(node.args[0], current, layers)
                return None if inner is None else inner + self._functional(node)
            if function in ("view", "reshape", "flatten"):
                inner = self._steps(node.func.value, current, layers)  # type: ignore[attr-defined]
                if inner is None:
                    return None
                if _flattens(node, current):
                    module = nn.Flatten()
                    self.places[id(module)] = (f"line {node.lineno}", self.quote(node))
                    return inner + [module]
        self.note(node, "forward is read as a chain of self.layer(x), F.function(x) and x.view(x.size(0), -1) "
                        "calls on one value; this expression is not one")
        return None

    def _functional(self, node: ast.Call) -> list[nn.Module]:
        """``F.relu(x)``, ``torch.flatten(x, 1)``: the nn layer with the same arguments after the input."""
        cls = getattr(nn, FUNCTIONAL[node.func.attr])  # type: ignore[attr-defined]
        try:
            args = tuple(self._literal(arg, f"argument {i + 2}") for i, arg in enumerate(node.args[1:]))
            call = ast.Call(node.func, [], [k for k in node.keywords if k.arg != "inplace"])
            module = self._layer(cls, ast.copy_location(call, node), args)
        except UnmappableError as exc:
            self.note(node, str(exc))
            return []
        self.places[id(module)] = (f"line {node.lineno}", self.quote(node))
        return [module]


ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}
LARGEST = 2**63 - 1  # arithmetic beyond this is refused (no value a layer takes is larger)


def _is_constant(node: ast.AST) -> bool:
    """Whole numbers and + - * // between them: what a person writes for a width (``16 * 5 * 5``)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub) and _is_constant(node.operand)
    return isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC and _is_constant(node.left) \
        and _is_constant(node.right)


def _constant(node: ast.AST) -> int:
    """The value of an ``_is_constant`` expression; ValueError past LARGEST or on a division by zero."""
    if isinstance(node, ast.Constant):
        value = cast(int, node.value)
    elif isinstance(node, ast.UnaryOp):
        value = -_constant(node.operand)
    else:
        left, right = _constant(node.left), _constant(node.right)  # type: ignore[attr-defined]
        if isinstance(node.op, ast.FloorDiv) and right == 0:  # type: ignore[attr-defined]
            raise ValueError("division by zero")
        value = ARITHMETIC[type(node.op)](left, right)  # type: ignore[attr-defined]
    if abs(value) > LARGEST:
        raise ValueError("too large")
    return value


# The comment `layerstudio export` writes after each call: "# 1 › 0: res1 -> 64x32x32", ", 3 copies" for a
# repeated group's Sequential, "# res1" in a repeat's later copies.
HINT = re.compile(r"(?:[^:]*:\s*)?(?P<id>[A-Za-z0-9_-]{1,64})(?:\s*->\s*[^,]*)?(?:,\s*(?P<copies>\d{1,4}) copies)?\s*")


def _comments(text: str) -> dict[int, str]:
    """Each line's comment text (without the #)."""
    comments = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string[1:].strip()
    except (tokenize.TokenError, SyntaxError):
        pass  # the file parsed, so this does not happen; the comments only add ids
    return comments


def _check_counts(kind: LayerKind, arguments: dict) -> None:
    """UnmappableError when a number the kind bounds is out of its range, before PyTorch builds anything: an LSTM of
    ten million stacked layers would take minutes and gigabytes to build, even with no weights allocated."""
    bounded = {p.name: p for p in kind.params if p.type in ("int", "float")}
    numbers = {name: value for name, value in arguments.items() if name in bounded
               and isinstance(value, (int, float)) and not isinstance(value, bool)}
    try:
        coerce_params(kind, numbers, f"the design's {kind.name}")
    except SpecError as exc:
        raise UnmappableError(str(exc)) from None


def _line(note: Note) -> int:
    """A note's line number, to list them in file order."""
    return int(note.where.split()[-1]) if note.where.split()[-1].isdigit() else 0


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _self_attribute(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _is_super_init(statement: ast.AST) -> bool:
    return isinstance(statement, ast.Expr) and "super(" in ast.unparse(statement) and "__init__" in \
        ast.unparse(statement)


def _flattens(node: ast.Call, current: str) -> bool:
    """``x.view(x.size(0), -1)``, ``x.reshape(x.shape[0], -1)``, ``x.view(-1, 400)``, ``x.flatten(1)``: one row per
    sample, as nn.Flatten() gives."""
    text = [ast.unparse(arg) for arg in node.args]
    if node.keywords:
        return False
    if node.func.attr == "flatten":  # type: ignore[attr-defined]
        return text == ["1"]
    batch = (f"{current}.size(0)", f"{current}.shape[0]")
    return len(text) == 2 and (text[0] in batch and text[1] == "-1" or text[0] == "-1" and _is_constant(node.args[1]))


def _class_name(cls: type) -> str:
    return f"nn.{cls.__name__}" if getattr(nn, cls.__name__, None) is cls else cls.__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\s+", " ", text)[:200]
