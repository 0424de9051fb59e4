"""Run parameters (SPEC §8.2): the declaration's rules and the values of one run.

Pure rules, no I/O: `ParamDecl` validates one declaration (pydantic, used by
models.py), `check_value` checks one value against a stored declaration, and
`resolve` turns a run request's `params` into what the run gets. Secret values
are never decided here beyond "given" or "use the stored default": sealing
them is secretbox.py's job, so nothing in this module ever needs the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

PARAM_TYPES = ("string", "text", "int", "number", "bool", "enum", "secret")
ParamType = Literal["string", "text", "int", "number", "bool", "enum", "secret"]
MAX_PARAMS = 50
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a parameter cannot take: it becomes an environment variable of host
# scripts, and these change how the shell, the loader or Scriptbox behave.
RESERVED_NAMES = frozenset({"PATH", "HOME", "USER", "SHELL", "IFS", "ENV", "BASH_ENV"})
RESERVED_PREFIXES = ("LD_", "SCRIPTBOX_")
# A value travels as an environment variable; Linux takes at most 128 KiB per
# string, and the env values of a definition are capped at 32 KiB as well.
MAX_VALUE_BYTES = 32 * 1024
MAX_CHOICES = 100
MAX_PATTERN_CHARS = 1000
# A pattern is the admin's, a value anyone's who may start the run: a pattern
# with catastrophic backtracking (`(a|aa)+$`) must not freeze the server's one
# event loop. `regex` (the maintained superset of `re`) can stop a match after a
# time limit, which `re` cannot.
PATTERN_TIMEOUT_S = 0.05
# Integers vm2 and browser scripts (JavaScript numbers) receive exactly.
MAX_SAFE_INT = 2**53 - 1
TEXT_TYPES = ("string", "text", "secret")
NUMBER_TYPES = ("int", "number")
MASK = "***"
# Strings accepted for bool values (CLI, curl, forms); JSON true/false always are.
BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}
_INT_TEXT = re.compile(r"^[+-]?[0-9]{1,16}$")
_NUMBER_TEXT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


class ParamError(ValueError):
    """A value does not fit its declaration; the message says why (for `fields`)."""


class ParamsInvalid(ValueError):
    """A run's parameters are invalid; `fields` names each bad one (e.g. params.limit)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("the run parameters are invalid")
        self.fields = fields


def _field_error(name: str, message: str) -> PydanticCustomError:
    # models.py appends ctx["field"] to the error's location: params.<i>.<field>.
    return PydanticCustomError("param_field", "{message}", {"field": name, "message": message})


def reserved_reason(name: str) -> str | None:
    """Why a parameter cannot have this name, or None when it can."""
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        return f"{name} is reserved (PATH, HOME, USER, SHELL, IFS, ENV, BASH_ENV, LD_*, SCRIPTBOX_*)"
    return None


class ParamDecl(BaseModel):
    """One declared parameter of a definition (`params[i]`)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(json_schema_extra={"pattern": PARAM_NAME_RE.pattern})]
    label: Annotated[StrictStr, Field(max_length=200)] = ""
    description: Annotated[StrictStr, Field(max_length=2000)] = ""
    type: ParamType
    required: StrictBool = False
    default: Annotated[StrictBool | StrictInt | StrictFloat | StrictStr | None, Field(json_schema_extra={
        "description": "a value of the parameter's type; for secret parameters write-only (answers show null "
                       "and hasDefault; null in an update keeps the stored one, omitting it removes it)"})] = None
    choices: Annotated[list[StrictStr] | None, Field(max_length=MAX_CHOICES, json_schema_extra={
        "description": "enum only (required there): the allowed values, unique"})] = None
    pattern: Annotated[StrictStr | None, Field(max_length=MAX_PATTERN_CHARS, json_schema_extra={
        "description": "string, text and secret only: a regular expression the whole value must match"})] = None
    min: Annotated[StrictInt | StrictFloat | None, Field(json_schema_extra={
        "description": "int and number only: the smallest allowed value"})] = None
    max: Annotated[StrictInt | StrictFloat | None, Field(json_schema_extra={
        "description": "int and number only: the largest allowed value"})] = None

    @model_validator(mode="after")
    def _rules(self) -> ParamDecl:
        if not PARAM_NAME_RE.fullmatch(self.name):
            raise _field_error("name", "must match ^[A-Za-z_][A-Za-z0-9_]*$ (letters, digits, _; "
                                       "not starting with a digit)")
        reserved = reserved_reason(self.name)
        if reserved:
            raise _field_error("name", reserved)
        self._check_choices()
        self._check_pattern()
        self._check_bounds()
        if self.type == "secret" and self.default == "":
            return self  # "" removes a stored secret default (definition_secrets.py)
        if self.default is not None:
            try:
                self.default = check_value(self.model_dump(), self.default, coerce=False)
            except ParamError as exc:
                raise _field_error("default", str(exc)) from None
        return self

    def _check_choices(self) -> None:
        if self.type != "enum":
            if self.choices is not None:
                raise _field_error("choices", "only enum parameters take choices")
            return
        if not self.choices:
            raise _field_error("choices", "an enum parameter needs at least one choice")
        for choice in self.choices:
            if not 1 <= len(choice) <= 200 or "\0" in choice:
                raise _field_error("choices", "each choice must be 1-200 characters without NUL")
        if len(set(self.choices)) != len(self.choices):
            raise _field_error("choices", "choices must be unique")

    def _check_pattern(self) -> None:
        if self.pattern is None:
            return
        if self.type not in TEXT_TYPES:
            raise _field_error("pattern", "only string, text and secret parameters take a pattern")
        try:
            regex.compile(self.pattern)
        except regex.error as exc:
            raise _field_error("pattern", f"is not a valid regular expression: {exc}") from None

    def _check_bounds(self) -> None:
        for name in ("min", "max"):
            bound = getattr(self, name)
            if bound is None:
                continue
            if self.type not in NUMBER_TYPES:
                raise _field_error(name, "only int and number parameters take min/max")
            if self.type == "int" and (not isinstance(bound, int) or abs(bound) > MAX_SAFE_INT):
                raise _field_error(name, f"must be a whole number from -{MAX_SAFE_INT} to {MAX_SAFE_INT}")
            if not math.isfinite(bound):
                raise _field_error(name, "must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _field_error("max", "must not be less than min")


def _check_text(decl: Mapping[str, Any], value: Any) -> str:
    if not isinstance(value, str):
        raise ParamError("must be a string")
    if "\0" in value:
        raise ParamError("must not contain a NUL character")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise ParamError("must be at most 32 KiB")
    if decl["type"] == "string" and ("\n" in value or "\r" in value):
        raise ParamError("must be one line (use a text parameter for several lines)")
    pattern = decl.get("pattern")
    if pattern is not None:
        try:
            matched = regex.fullmatch(pattern, value, timeout=PATTERN_TIMEOUT_S)
        except TimeoutError:
            raise ParamError("could not be checked against the pattern in time (the pattern backtracks too much "
                             "for this value; simplify the pattern)") from None
        if matched is None:
            raise ParamError(f"must match the pattern {pattern}")
    return value


def _check_number(decl: Mapping[str, Any], value: Any, coerce: bool) -> int | float:
    whole = decl["type"] == "int"
    if coerce and isinstance(value, str):
        text = value.strip()
        if whole and _INT_TEXT.fullmatch(text):
            value = int(text)
        elif not whole and _NUMBER_TEXT.fullmatch(text):
            value = float(text) if any(c in text for c in ".eE") else int(text)
    if whole:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError("must be a whole number")
        if abs(value) > MAX_SAFE_INT:
            raise ParamError(f"must be between -{MAX_SAFE_INT} and {MAX_SAFE_INT}")
    elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParamError("must be a number")
    low, high = decl.get("min"), decl.get("max")
    if low is not None and value < low:
        raise ParamError(f"must be at least {low}")
    if high is not None and value > high:
        raise ParamError(f"must be at most {high}")
    return value


def check_value(decl: Mapping[str, Any], value: Any, *, coerce: bool) -> Any:
    """The value a run gets for `value`, checked against the declaration `decl`.

    With `coerce`, the string forms of int ("5"), number ("2.5") and bool
    ("true"/"false"/"1"/"0") are accepted as well (run requests: the CLI and
    forms send strings). Raises ParamError with the reason.
    """
    kind = decl["type"]
    if kind in TEXT_TYPES:
        return _check_text(decl, value)
    if kind in NUMBER_TYPES:
        return _check_number(decl, value, coerce)
    if kind == "bool":
        if coerce and isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
            return BOOL_WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            raise ParamError("must be true or false")
        return value
    choices = decl.get("choices") or []
    if not isinstance(value, str) or value not in choices:
        raise ParamError("must be one of " + ", ".join(choices))
    return value


@dataclass(frozen=True)
class ResolvedParams:
    """A run's parameters after checking: what the run gets.

    `values` holds every declared name: the typed value, or None when the
    parameter has none. For secret parameters it holds None; their clear
    values given in the request are in `secrets`, and `secret_defaults` names
    those that take the definition's stored (sealed) default.
    """

    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    secret_defaults: frozenset[str] = frozenset()

    def shown(self) -> dict[str, Any]:
        """The parameters as the run document keeps them: secret values as ***."""
        out = dict(self.values)
        for name in (*self.secrets, *self.secret_defaults):
            out[name] = MASK
        return out


def _has_stored_default(decl: Mapping[str, Any]) -> bool:
    return decl.get("default") is not None or bool(decl.get("sealedDefault"))


def resolve(decls: Sequence[Mapping[str, Any]], given: Any, *, where: str = "params",
            allow_secrets: bool = True) -> ResolvedParams:
    """Check a run's `params` against the declarations; defaults fill the rest.

    `given` is the request's object (None: nothing given). A null value counts
    as not given. Unknown names are refused, and with `allow_secrets` False
    (schedules) so are values for secret parameters. Raises ParamError whose
    `fields` (an attribute) names each bad value as `<where>.<name>`.
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ParamsInvalid({where: "must be an object of parameter values"})
    by_name = {str(d["name"]): d for d in decls}
    fields = {f"{where}.{name}": "unknown parameter" for name in given if name not in by_name}
    values: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    secret_defaults: set[str] = set()
    for name, decl in by_name.items():
        raw = given.get(name)
        values[name] = None
        if raw is None:
            if decl["type"] == "secret" and _has_stored_default(decl):
                secret_defaults.add(name)
            elif decl.get("default") is not None:
                values[name] = decl["default"]
            elif decl["type"] == "bool":
                values[name] = False  # a switch is off unless set: bool parameters always have a value
            elif decl.get("required"):
                fields[f"{where}.{name}"] = "is required"
            continue
        if decl["type"] == "secret" and not allow_secrets:
            fields[f"{where}.{name}"] = "a secret parameter cannot be set here (give it a default instead)"
            continue
        if decl.get("required") and raw == "" and decl["type"] in TEXT_TYPES:
            fields[f"{where}.{name}"] = "is required"  # an empty form field is no value
            continue
        try:
            value = check_value(decl, raw, coerce=True)
        except ParamError as exc:
            fields[f"{where}.{name}"] = str(exc)
            continue
        if decl["type"] == "secret":
            secrets[name] = value
        else:
            values[name] = value
    if fields:
        raise ParamsInvalid(fields)
    return ResolvedParams(values, secrets, frozenset(secret_defaults))


def env_value(value: Any) -> str:
    """How a typed value appears as an environment variable (booleans true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
