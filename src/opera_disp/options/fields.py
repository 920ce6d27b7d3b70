"""How an option is declared, and what is derived from a declaration.

:class:`Opt` annotates a field of an option group (``Annotated[type, Opt(...)]``);
:class:`Group` is the machinery every group shares: its declared options
(:class:`OptionField`), checking values (:meth:`Group.make`), the summary's entries
(:meth:`Group.summary`), and :func:`json_schema` of those entries. The groups and the
products themselves are declared in :mod:`.model`.
"""

import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from ..errors import BadInput
from ..geometry import Window


@dataclass(frozen=True)
class Opt:
    """What one option is, beyond its type and default.

    Attributes
    ----------
    help
        One or two sentences for ``--help``, the docs and the DPS input's description.
    metavar
        How ``--help`` shows the value (``W,S,E,N``); enums show their choices.
    parse
        Takes a typed value or its text form (command line, DPS, notebooks) and returns the
        checked value, or raises :class:`~opera_disp.errors.BadInput`; None: taken as is.
    flag
        A yes/no option's command-line spelling: ``--stac/--no-stac`` or ``--seasonal``.
    short
        A short alias (``-o``).
    summary
        Listed in the summary's ``inputs``.
    dps
        Position of the option among the DPS inputs (``0``: the file input); None: not a
        DPS input.
    dps_name
        The DPS input's name when not the field's (the time series' ``layer`` is fed by
        the shared ``layers`` input).
    dps_help
        The DPS input's description when it differs from ``help``.
    shapes_output
        Whether another value makes other outputs (a rerun with another ``workers`` is the
        same job; another ``layers`` is not): what a resume compares.
    default_help
        How ``--help`` shows the default, when the value alone would mislead.
    summary_help
        What the summary's entry holds, when it is not what the option takes (the
        description in the summary's JSON Schema; default ``help``).
    command_help
        ``(command, help)`` pairs: the help text of the option on a command where it
        means something else (``--aoi`` on ``search`` selects granules, it masks nothing);
        ``"search"`` stands for every command that searches, ``"inspect"`` for every
        command that takes one granule.
    """

    help: str
    metavar: str = ""
    parse: Callable[[Any], Any] | None = None
    flag: str | None = None
    short: str | None = None
    summary: bool = True
    dps: int | None = None
    dps_name: str | None = None
    dps_help: str | None = None
    shapes_output: bool = True
    default_help: str | None = None
    summary_help: str | None = None
    command_help: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OptionField:
    """One declared option: its name, group, type, default and :class:`Opt`."""

    name: str
    group: str
    hint: Any
    default: Any
    opt: Opt

    @property
    def base(self) -> Any:
        """The type without ``| None``."""
        args = typing.get_args(self.hint)
        if type(None) in args:
            rest = [a for a in args if a is not type(None)]
            return rest[0] if len(rest) == 1 else object
        return self.hint

    @property
    def is_flag(self) -> bool:
        """A yes/no option."""
        return self.base is bool

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values of an enum option (else empty)."""
        base = self.base
        return tuple(m.value for m in base) if isinstance(base, type) and \
            issubclass(base, Enum) else ()

    @property
    def metavar(self) -> str:
        """How ``--help`` shows the value."""
        return self.opt.metavar or ("[" + "|".join(self.choices) + "]" if self.choices
                                    else "VALUE")

    def help_for(self, command: str | None = None) -> str:
        """The option's help text on ``command`` (its own text where it has one).

        Examples
        --------
        >>> from opera_disp.options import SubsetOptions
        >>> SubsetOptions.option("aoi").help_for("search").startswith("GeoJSON polygon")
        True
        >>> "nodata" in SubsetOptions.option("aoi").help_for("search")
        False
        """
        return dict(self.opt.command_help).get(command or "", self.opt.help)

    def shown_default(self) -> str | None:
        """The default as the command line writes it (None: no default worth showing)."""
        d = self.default
        if self.opt.default_help:
            return self.opt.default_help
        if isinstance(d, Path):
            return str(d)
        if d is None or d == ():
            return None
        if isinstance(d, bool):
            return None if not self.opt.flag or "/" not in self.opt.flag else \
                self.opt.flag.split("/")[0 if d else 1]
        if isinstance(d, tuple):
            return ",".join(str(v) for v in d)
        return str(d.value if isinstance(d, Enum) else d)


def jsonable(value: Any) -> Any:
    """An option's value as the summary writes it.

    Examples
    --------
    >>> from opera_disp.types import MaskMode
    >>> jsonable((MaskMode.NONE, Path("a"), (1.0, 2.0)))
    ['none', 'a', [1.0, 2.0]]
    """
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path | Window):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    return value


class Group:
    """Base of the option groups: the machinery every declared field shares.

    Subclasses are frozen, keyword-only dataclasses whose fields are annotated
    ``Annotated[type, Opt(...)]``; a field without an :class:`Opt` is derived (filled by
    a group's ``_prepare``), not an option. A group may define ``_prepare`` (a
    classmethod normalising the parsed values, e.g. merging the granule list) and
    ``_validate`` (cross-field checks); :meth:`make` runs every group's, base first.
    Build options with :meth:`make`: it parses every value (text or typed); the
    constructor itself only runs the cross-field checks, for values already typed.
    """

    #: The ``--help`` section of the group's options.
    title: ClassVar[str] = "Options"
    #: A product's own defaults of options declared by a group (e.g. its output folder):
    #: the option stays declared once; its default here is what ``--help``, the Python
    #: signature and :meth:`make` use for this product.
    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def options(cls) -> tuple[OptionField, ...]:
        """The declared options, in declaration order (base groups first)."""
        found = _OPTIONS.get(cls)
        if found is None:
            found = _OPTIONS[cls] = _options(cls)
        return found

    @classmethod
    def option(cls, name: str) -> OptionField:
        """One declared option by name."""
        for f in cls.options():
            if f.name == name:
                return f
        raise KeyError(name)

    @classmethod
    def make(cls, **values: Any) -> Self:
        """Check typed or text values (None: not given) and build the options.

        Raises
        ------
        BadInput
            With one line naming the bad value (or unknown keyword) and what is allowed.
        """
        known = {f.name: f for f in cls.options()}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise BadInput(f"unknown option {unknown[0]!r}; expected one of: "
                           f"{', '.join(known)}")
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            parse = known[name].opt.parse
            parsed[name] = parse(value) if parse is not None else value
        for name, value in cls.defaults.items():
            parsed.setdefault(name, value)
        for klass in reversed(cls.__mro__):
            prepare = klass.__dict__.get("_prepare")
            if prepare is not None:
                prepare.__func__(cls, parsed)
        return cls(**parsed)

    def __post_init__(self) -> None:
        for klass in reversed(type(self).__mro__):
            validate = klass.__dict__.get("_validate")
            if validate is not None:
                validate(self)

    def summary(self, group: "type[Group] | None" = None) -> dict[str, Any]:
        """The options as understood, JSON-ready (the summary's ``inputs``); ``group``:
        only that group's options."""
        names = {f.name for f in (group or type(self)).options()}
        out = {f.name: jsonable(getattr(self, f.name)) for f in self.options()
               if f.opt.summary and f.name in names}
        for klass in reversed(type(self).__mro__):
            extra = klass.__dict__.get("_summary")
            if extra is not None and (group is None or issubclass(group, klass)):
                extra(self, out)
        return out


_OPTIONS: dict[type[Group], tuple[OptionField, ...]] = {}


def _options(cls: type[Group]) -> tuple[OptionField, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        meta = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Opt)]
        if not meta:
            continue
        owner = next(k for k in reversed(cls.__mro__)
                     if f.name in inspect.get_annotations(k))
        default = cls.defaults.get(f.name, f.default if f.default is not MISSING else None)
        out.append(OptionField(f.name, getattr(owner, "title", "Options"),
                               typing.get_args(hint)[0], default, meta[0]))
    return tuple(out)


def json_schema(*products: type[Group]) -> dict[str, Any]:
    """The JSON Schema of the summary's ``inputs`` of any of ``products``: every option
    listed in a summary, typed from its declaration, described by its help.

    Examples
    --------
    >>> from opera_disp.options import SubsetOptions
    >>> s = json_schema(SubsetOptions)
    >>> s["properties"]["workers"]["type"], s["properties"]["mask"]["enum"]
    ('integer', ['recommended', 'none'])
    """
    props: dict[str, Any] = {}
    everywhere: set[str] | None = None
    for product in products:
        names = set()
        for f in product.options():
            if not f.opt.summary:
                continue
            names.add(f.name)
            props.setdefault(f.name, {**_json_type(f),
                                      "description": f.opt.summary_help or f.opt.help})
        for klass in product.__mro__:
            for name, schema in klass.__dict__.get("extra_schema", {}).items():
                names.add(name)
                props.setdefault(name, schema)
        everywhere = names if everywhere is None else everywhere & names
    return {"type": "object", "properties": props, "required": sorted(everywhere or ()),
            "additionalProperties": False,
            "description": "The inputs as the job understood them (one entry per option)."}


def _json_type(f: OptionField) -> dict[str, Any]:
    def one(t: Any) -> dict[str, Any]:
        if t is bool:
            return {"type": "boolean"}
        if t is int:
            return {"type": "integer"}
        if t is float:
            return {"type": "number"}
        if isinstance(t, type) and issubclass(t, Enum):
            return {"type": "string", "enum": [m.value for m in t]}
        if typing.get_origin(t) is Literal:
            return {"type": "string", "enum": list(typing.get_args(t))}
        if typing.get_origin(t) is tuple:
            args = [a for a in typing.get_args(t) if a is not Ellipsis]
            return {"type": "array", "items": one(args[0]) if args else {}}
        return {"type": "string"}

    schema = one(f.base)
    nullable = type(None) in typing.get_args(f.hint)
    return {"anyOf": [schema, {"type": "null"}]} if nullable else schema
