"""Validation of script definitions (the shared words are in vocabulary.py).

Validation uses pydantic (strict types, unknown fields refused) so that every
rule of the contract lives in one declarative model and every failure maps to
a field name the UI can show next to the input.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ValidationFailed
from .field_messages import human_message
from .params import MAX_PARAMS, ParamDecl
from .retention_rule import RetentionInput
from .schedule import ScheduleInput, strip_read_only
from .vocabulary import (
    ALLOWED_RUNNERS,
    DEFAULT_OUTPUT_MODE,
    DEFAULT_RUNNER,
    DEFAULT_TIMEOUT_MS,
    MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    OUTPUT_MODES,
    RUNNERS,
    SCRIPT_TYPES,
)

# Checked with fullmatch: with match(), "$" also accepts a trailing newline.
CODE_IDENTIFIER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SCRIPT_BYTES = 1024 * 1024
MAX_ENV_VALUE_BYTES = 32 * 1024
MAX_ENV_ENTRIES = 200
MAX_TAGS = 20
MAX_TAG_CHARS = 40

# Fields clients may send back unchanged (e.g. a document from GET) but never set.
READ_ONLY_FIELDS = frozenset({"id", "_id", "createdAt", "updatedAt", "updatedBy", "version", "lastRun"})
READ_ONLY_PARAM_FIELDS = frozenset({"hasDefault"})
# Fields that take one word of a fixed vocabulary.
WORD_FIELDS: dict[str, tuple[str, ...]] = {"type": SCRIPT_TYPES, "runner": RUNNERS, "outputMode": OUTPUT_MODES}


def _utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


class EnvEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # json_schema_extra states in the OpenAPI document what the validators below enforce.
    key: Annotated[StrictStr, Field(json_schema_extra={"pattern": ENV_KEY_RE.pattern})]
    value: Annotated[StrictStr | None, Field(json_schema_extra={
        "maxLength": MAX_ENV_VALUE_BYTES,
        "description": "at most 32 KiB of UTF-8. Secret entries are write-only: answers show null, and null "
                       "in an update keeps the stored value"})]
    secret: Annotated[StrictBool, Field(json_schema_extra={
        "description": "encrypted at rest, never shown again, masked in output (SPEC §8.3)"})] = False

    @field_validator("key")
    @classmethod
    def _key_shape(cls, key: str) -> str:
        if not ENV_KEY_RE.fullmatch(key):
            raise ValueError("must match ^[A-Za-z_][A-Za-z0-9_]*$ (letters, digits, _; not starting with a digit)")
        return key

    @field_validator("value")
    @classmethod
    def _value_size(cls, value: str | None) -> str | None:
        if value is not None and _utf8_len(value) > MAX_ENV_VALUE_BYTES:
            raise ValueError("must be at most 32 KiB")
        return value

    @model_validator(mode="after")
    def _null_only_for_secrets(self) -> EnvEntry:
        if self.value is None and not self.secret:
            raise PydanticCustomError("param_field", "{message}", {
                "field": "value", "message": "must be a string (null only keeps a stored secret)"})
        return self


def _tag_shape(tag: str) -> str:
    # The length is checked as sent, so the OpenAPI limits are exactly what is enforced.
    if len(tag) > MAX_TAG_CHARS:
        raise ValueError(f"must be at most {MAX_TAG_CHARS} characters ({len(tag)} given)")
    if not tag.strip():
        raise ValueError("must not be blank")
    return tag.strip()


# " ops " is stored as the tag "ops".
Tag = Annotated[StrictStr, AfterValidator(_tag_shape), Field(json_schema_extra={
    "minLength": 1, "maxLength": MAX_TAG_CHARS, "pattern": r"\S", "description": "1-40 characters; stored trimmed"})]


class ScriptDefinitionInput(BaseModel):
    """A complete definition as stored (without id and timestamps)."""

    model_config = ConfigDict(extra="forbid")

    # json_schema_extra states in the OpenAPI document what the validators below
    # enforce (with their own messages); the document is generated from this class.
    name: Annotated[StrictStr, Field(min_length=1, max_length=200, json_schema_extra={"pattern": r"\S"})]
    codeIdentifier: Annotated[StrictStr, Field(json_schema_extra={"pattern": CODE_IDENTIFIER_RE.pattern})]
    description: Annotated[StrictStr, Field(max_length=10_000)] = ""
    type: Annotated[StrictStr, Field(json_schema_extra={"enum": list(SCRIPT_TYPES)})]
    runner: Annotated[StrictStr | None, Field(json_schema_extra={
        "enum": [*RUNNERS, None],
        "description": "allowed pairs: bash+host, node+host, node+vm2, browser+browser; null or omitted: "
                       "the type's default"})] = None
    script: Annotated[StrictStr, Field(json_schema_extra={
        "maxLength": MAX_SCRIPT_BYTES, "description": "at most 1 MiB of UTF-8"})] = ""
    defaultWorkingDirectory: Annotated[StrictStr, Field(json_schema_extra={
        "pattern": r"^(/[^\x00]*)?$", "description": '"" or an absolute path; checked when a run starts'})] = ""
    env: Annotated[list[EnvEntry], Field(max_length=MAX_ENV_ENTRIES, json_schema_extra={
        "description": "keys must be unique"})] = []
    timeoutMs: Annotated[StrictInt, Field(ge=MIN_TIMEOUT_MS, le=MAX_TIMEOUT_MS)] = DEFAULT_TIMEOUT_MS
    enabled: StrictBool = True
    outputMode: Annotated[StrictStr, Field(json_schema_extra={
        "enum": list(OUTPUT_MODES),
        "description": "separate: stdout and stderr on two pipes, told apart, interleaved in the order the "
                       "server read them; merged: stderr on the stdout pipe (2>&1), all of it stdout, in exactly "
                       "the order it was written. Host and vm2 runners only (browser runs keep the written "
                       "order anyway)"})] = DEFAULT_OUTPUT_MODE
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS, json_schema_extra={
        "description": "trimmed; repeats (ignoring case) are dropped, the first spelling kept"})] = []
    schedule: ScheduleInput | None = None
    params: Annotated[list[ParamDecl], Field(max_length=MAX_PARAMS, json_schema_extra={
        "description": "run parameters (SPEC §8.2); names unique and different from the env keys"})] = []
    # null: SCRIPTBOX_RETENTION_DAYS and no kept minimum (docs/retention.md).
    retention: RetentionInput | None = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("must not be blank")
        return name

    @field_validator("codeIdentifier")
    @classmethod
    def _code_identifier_shape(cls, value: str) -> str:
        if not CODE_IDENTIFIER_RE.fullmatch(value):
            raise ValueError("must match ^[a-z0-9][a-z0-9_-]{0,63}$ (lowercase letters, digits, _ and -; at most 64)")
        return value

    @field_validator(*WORD_FIELDS)
    @classmethod
    def _known_word(cls, value: str | None, info: ValidationInfo) -> str | None:
        words = WORD_FIELDS[info.field_name or ""]
        if value is not None and value not in words:  # runner may be null (its default for the type)
            raise ValueError(f"must be one of {', '.join(words)}")
        return value

    @field_validator("script")
    @classmethod
    def _script_size(cls, value: str) -> str:
        if _utf8_len(value) > MAX_SCRIPT_BYTES:
            raise ValueError("must be at most 1 MiB (UTF-8)")
        return value

    @field_validator("defaultWorkingDirectory")
    @classmethod
    def _absolute_or_empty(cls, value: str) -> str:
        if value and (not value.startswith("/") or "\x00" in value):
            raise ValueError('must be "" or an absolute path')
        return value

    @field_validator("env")
    @classmethod
    def _unique_keys(cls, entries: list[EnvEntry]) -> list[EnvEntry]:
        seen: set[str] = set()
        for entry in entries:
            if entry.key in seen:
                raise ValueError(f"duplicate key {entry.key}")
            seen.add(entry.key)
        return entries

    @field_validator("params")
    @classmethod
    def _unique_param_names(cls, params: list[ParamDecl]) -> list[ParamDecl]:
        seen: set[str] = set()
        for i, param in enumerate(params):
            if param.name in seen:
                raise PydanticCustomError("param_field", "{message}", {
                    "field": f"{i}.name", "message": f"duplicate parameter {param.name}"})
            seen.add(param.name)
        return params

    @model_validator(mode="after")
    def _params_apart_from_env(self) -> ScriptDefinitionInput:
        keys = {entry.key for entry in self.env}
        for i, param in enumerate(self.params):
            if param.name in keys:
                raise ValueError(f"params.{i}.name:{param.name} is also an env key; a parameter needs its own name")
        return self

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        # "Backup" and "backup" would be two groups in the list that look like one.
        seen: set[str] = set()
        unique = []
        for tag in tags:
            if tag.casefold() not in seen:
                seen.add(tag.casefold())
                unique.append(tag)
        return unique

    @model_validator(mode="after")
    def _runner_pair(self) -> ScriptDefinitionInput:
        if self.runner is None:
            self.runner = DEFAULT_RUNNER[self.type]
        elif self.runner not in ALLOWED_RUNNERS[self.type]:
            allowed = ", ".join(ALLOWED_RUNNERS[self.type])
            raise ValueError(f"runner:runner {self.runner} is not allowed for type {self.type} (allowed: {allowed})")
        if self.schedule is not None and self.runner == "browser":
            raise ValueError("schedule:browser scripts run only in an open admin page and cannot be scheduled")
        if self.outputMode != DEFAULT_OUTPUT_MODE and self.runner == "browser":
            raise ValueError("outputMode:browser runs keep stdout and stderr in the order they were written; "
                             "merged applies to the host and vm2 runners")
        return self


def _fields_from(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "body"
        message = str(item["msg"]).removeprefix("Value error, ")
        # Model-level checks name their field as "field:message".
        if not item["loc"] and ":" in message:
            loc, message = message.split(":", 1)
        # Checks of a nested object name the field inside it (params.2.default).
        if item["type"] == "param_field":
            loc = f"{loc}.{item['ctx']['field']}"
        fields.setdefault(loc, human_message(loc, str(item["type"]), message, item.get("ctx")))
    return fields


def _strip_read_only(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in READ_ONLY_FIELDS}
    if "schedule" in out:
        out["schedule"] = strip_read_only(out["schedule"])
    if isinstance(out.get("params"), list):
        out["params"] = [{k: v for k, v in p.items() if k not in READ_ONLY_PARAM_FIELDS} if isinstance(p, dict)
                         else p for p in out["params"]]
    return out


def stored_as_input(doc: dict[str, Any]) -> dict[str, Any]:
    """Stored env and params in their input form: sealed secrets become null ("keep the stored one")."""
    out = dict(doc)
    if isinstance(out.get("env"), list):
        out["env"] = [{k: v for k, v in e.items() if k != "sealed"} for e in out["env"]]
    if isinstance(out.get("params"), list):
        out["params"] = [{k: v for k, v in p.items() if k != "sealedDefault"} for p in out["params"]]
    return out


def validate_new_definition(body: Any) -> dict[str, Any]:
    """Validate a create request; returns the document to store.

    Raises ValidationFailed with one message per bad field.
    """
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    try:
        model = ScriptDefinitionInput.model_validate(_strip_read_only(body))
    except ValidationError as exc:
        raise ValidationFailed("the script definition is invalid", fields=_fields_from(exc)) from None
    return model.model_dump()


def validate_definition_update(existing: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Validate a partial update against the stored definition.

    Returns the complete new document. When the type changes and no runner is
    given, the runner is kept if still allowed, else reset to the type's default.
    Raises ValidationFailed with one message per bad field.
    """
    if not isinstance(patch, dict):
        raise ValidationFailed("the body must be a JSON object")
    patch = _strip_read_only(patch)
    current = {k: existing[k] for k in ScriptDefinitionInput.model_fields if k in existing}
    # Stored secrets go back in as "keep" (null); definition_secrets.py puts them back.
    current = stored_as_input(current)
    merged = {**current, **patch}
    if "type" in patch and "runner" not in patch:
        new_type = patch["type"]
        if new_type in ALLOWED_RUNNERS and current.get("runner") not in ALLOWED_RUNNERS[new_type]:
            merged["runner"] = None
        if new_type == "browser" and "outputMode" not in patch:
            # Like the runner above: a setting the new type cannot have goes back to its default.
            merged.pop("outputMode", None)
    try:
        model = ScriptDefinitionInput.model_validate(merged)
    except ValidationError as exc:
        raise ValidationFailed("the script definition is invalid", fields=_fields_from(exc)) from None
    return model.model_dump()
