"""The manifest model: build, parse, validate and render AWS Import/Export manifests.

One model serves the operators (which validate before any call is made) and the emulator
(which answers CreateJob/UpdateJob with the very same verdict), so the two cannot disagree.

Parsing reads every YAML scalar as text (``yaml.BaseLoader``: safe, and a ``deviceId`` of
``01234`` stays ``01234`` instead of becoming an octal number) and converts each field by
the model's own type. Validation collects every problem at once; each names the field,
the fix and the service error code the real service would answer with.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal

import yaml

from airflow_provider_importexport import exceptions as exc

JobType = Literal["Import", "Export"]

MASK = "***"
LOG_KEY_LIMIT = 1024
JOB_ID_LENGTH = 5
ARCHIVE_COMMENT_LIMIT = 997
EXPORT_FILE_SYSTEMS = ("NTFS", "EXT2", "EXT3", "EXT4", "FAT32")
CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read")
SERVICE_LEVELS = ("standard", "expeditedShipping")
SECRET_KEYS = ("pinCode", "trueCryptPassword")
_YES = {"yes": True, "no": False, "true": True, "false": False}
_PO_BOX = re.compile(r"\bP\.?\s*O\.?\s*Box\b", re.IGNORECASE)
_EU_COUNTRIES = {
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
}  # fmt: skip
_COUNTRY_ALIASES = {
    "USA": "US", "UNITED STATES": "US", "UNITED STATES OF AMERICA": "US", "CANADA": "CA",
    "IRELAND": "IE", "SINGAPORE": "SG", "UNITED KINGDOM": "GB", "UK": "GB", "GERMANY": "DE",
    "FRANCE": "FR", "NETHERLANDS": "NL", "SPAIN": "ES", "ITALY": "IT", "JAPAN": "JP",
}  # fmt: skip


# --- problems --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest: where, what to do, and the service's error code."""

    code: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.code}]"


MALFORMED = exc.MalformedManifestError.code
MISSING = exc.MissingManifestFieldError.code
INVALID = exc.InvalidManifestFieldError.code
INVALID_ADDRESS = exc.InvalidAddressError.code
MISSING_CUSTOMS = exc.MissingCustomsError.code
INVALID_CUSTOMS = exc.InvalidCustomsError.code
INVALID_FILE_SYSTEM = exc.InvalidFileSystemError.code
MULTIPLE_REGIONS = exc.MultipleRegionsError.code


def manifest_error(problems: list[ManifestProblem], *, job_id: str | None = None) -> exc.ManifestError:
    """One exception listing every problem; its class and code are the first problem's."""
    first = problems[0]
    found = exc.ERRORS_BY_CODE.get(first.code, exc.ManifestError)
    cls = found if issubclass(found, exc.ManifestError) else exc.ManifestError
    listing = "; ".join(str(p) for p in problems)
    noun = "problem" if len(problems) == 1 else "problems"
    error = cls(f"Manifest has {len(problems)} {noun}: {listing}", job_id=job_id, problems=problems)
    assert isinstance(error, exc.ManifestError)
    return error


# --- field declarations ----------------------------------------------------------------------


Kind = Literal["str", "yesno", "decimal", "strlist", "strmap"]


def spec(
    key: str,
    kind: Kind | type | tuple[type] = "str",
    *,
    required: bool = False,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    default: Any = None,
    max_bytes: int | None = None,
) -> Any:
    """Declare a manifest field: YAML key, type, and the rules validation enforces."""
    meta = {
        "key": key,
        "kind": kind,
        "required": required,
        "choices": choices,
        "secret": secret,
        "max_bytes": max_bytes,
    }
    if kind in ("strlist",) or isinstance(kind, tuple):
        return field(default_factory=list, metadata=meta)
    if kind == "strmap":
        return field(default_factory=dict, metadata=meta)
    # Secrets stay out of repr(), which is what logs and rendered template fields show.
    return field(default=default, metadata=meta, repr=not secret)


class _Section:
    """Shared behaviour of every manifest mapping (top level and nested blocks)."""

    #: service error code for a problem inside this block
    problem_code: ClassVar[str] = INVALID
    #: service error code when a required field of this block is absent
    missing_code: ClassVar[str] = MISSING

    @classmethod
    def field_specs(cls) -> list[tuple[str, dict[str, Any]]]:
        return [(f.name, dict(f.metadata)) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def yaml_keys(cls) -> dict[str, str]:
        return {meta["key"]: name for name, meta in cls.field_specs()}

    def to_dict(self, *, mask_secrets: bool = False) -> dict[str, Any]:
        """The manifest as plain data with the service's keys, in declaration order."""
        out: dict[str, Any] = {}
        for name, meta in self.field_specs():
            value = getattr(self, name)
            if value is None or value == [] or value == {}:
                continue
            if mask_secrets and meta["secret"]:
                value = MASK
            out[meta["key"]] = _plain(value, mask_secrets)
        return out

    def secret_values(self) -> list[str]:
        found: list[str] = []
        for name, meta in self.field_specs():
            value = getattr(self, name)
            if meta["secret"] and value:
                found.append(str(value))
            elif isinstance(value, _Section):
                found.extend(value.secret_values())
            elif isinstance(value, list):
                found.extend(v for item in value if isinstance(item, _Section) for v in item.secret_values())
        return found


def _plain(value: Any, mask_secrets: bool) -> Any:
    if isinstance(value, _Section):
        return value.to_dict(mask_secrets=mask_secrets)
    if isinstance(value, list):
        return [_plain(v, mask_secrets) for v in value]
    if isinstance(value, bool):
        return _YesNo("yes" if value else "no")
    if isinstance(value, Decimal):
        return str(value)
    return value


# --- nested blocks ----------------------------------------------------------------------------


@dataclass(kw_only=True)
class ReturnAddress(_Section):
    """Where AWS ships the device back to (personal data: never logged unmasked)."""

    problem_code: ClassVar[str] = INVALID_ADDRESS
    missing_code: ClassVar[str] = INVALID_ADDRESS

    name: str | None = spec("name", required=True)
    company: str | None = spec("company")
    street1: str | None = spec("street1", required=True)
    street2: str | None = spec("street2")
    street3: str | None = spec("street3")
    city: str | None = spec("city", required=True)
    state_or_province: str | None = spec("stateOrProvince")
    postal_code: str | None = spec("postalCode", required=True)
    country: str | None = spec("country", required=True)
    phone_number: str | None = spec("phoneNumber", required=True)


@dataclass(kw_only=True)
class Customs(_Section):
    """Customs declaration, needed when the device crosses a border."""

    problem_code: ClassVar[str] = INVALID_CUSTOMS
    missing_code: ClassVar[str] = INVALID_CUSTOMS

    data_description: str | None = spec("dataDescription", required=True)
    encrypted_data: bool | None = spec("encryptedData", "yesno", required=True)
    encryption_classification: str | None = spec("encryptionClassification", required=True)
    export_certifier_name: str | None = spec("exportCertifierName", required=True)
    requires_export_license: bool | None = spec("requiresExportLicense", "yesno", required=True)
    device_value: Decimal | None = spec("deviceValue", "decimal", required=True)
    device_country_of_origin: str | None = spec("deviceCountryOfOrigin", required=True)
    device_type: str | None = spec("deviceType", required=True)
    type_of_export: str | None = spec("typeOfExport", required=True)


@dataclass(kw_only=True)
class ExportOperation(_Section):
    """One S3 export operation: which keys of which bucket go where on the device."""

    export_bucket: str | None = spec("exportBucket", required=True)
    prefix: str | None = spec("prefix")
    begin_marker: str | None = spec("beginMarker")
    end_marker: str | None = spec("endMarker")
    target_directory: str | None = spec("targetDirectory")


@dataclass(kw_only=True)
class DeviceOperation(_Section):
    """One EBS or Glacier import operation (whole-device image).

    The EBS sub-fields were not retrievable from the service's documentation; by analogy
    with Glacier we accept ``destination``, ``source`` and ``region`` (see the spec, §4.7).
    """

    destination: str | None = spec("destination", required=True, choices=("ebs-snapshot", "glacier"))
    source: str | None = spec("source", default="device", choices=("device",))
    region: str | None = spec("region")
    vault_name: str | None = spec("vaultName")
    archive_comment: str | None = spec("archiveComment", max_bytes=ARCHIVE_COMMENT_LIMIT)


# --- manifests --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Manifest(_Section):
    """Options common to every job kind."""

    version: ClassVar[str] = ""
    job_type: ClassVar[JobType] = "Import"
    log_name: ClassVar[str] = "import-log-"
    kind_name: ClassVar[str] = ""

    manifest_version: str | None = spec("manifestVersion", required=True)
    access_key_id: str | None = spec("accessKeyId")
    device_id: str | None = spec("deviceId", required=True)
    generator: str | None = spec("generator")
    log_bucket: str | None = spec("logBucket")
    log_prefix: str | None = spec("logPrefix")
    notification_email: str | None = spec("notificationEmail")
    service_level: str | None = spec("serviceLevel", choices=SERVICE_LEVELS)
    return_address: ReturnAddress | None = spec("returnAddress", ReturnAddress, required=True)
    customs: Customs | None = spec("customs", Customs)

    def __post_init__(self) -> None:
        if self.manifest_version is None:
            self.manifest_version = self.version

    # -- rendering --
    def to_yaml(self, *, mask_secrets: bool = False) -> str:
        """Deterministic YAML (declaration order); ``mask_secrets`` for logs and the UI."""
        return yaml.dump(
            self.to_dict(mask_secrets=mask_secrets),
            Dumper=_ManifestDumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
        )

    # -- facts the service derives from a manifest --
    @property
    def effective_log_bucket(self) -> str | None:
        return self.log_bucket

    def log_key(self, job_id: str) -> str:
        return f"{self.log_prefix or ''}{self.log_name}{job_id}"

    def buckets(self) -> list[str]:
        """Every bucket the job touches (data and log), in manifest order, without repeats."""
        found = [b for b in (*self.data_buckets(), self.effective_log_bucket) if b]
        return list(dict.fromkeys(found))

    def data_buckets(self) -> list[str]:
        return []

    def problems(self, *, bucket_regions: dict[str, str] | None = None) -> list[ManifestProblem]:
        """Every problem with this manifest; empty when it is valid."""
        found = _check_section(self, "")
        found.extend(self._kind_problems())
        found.extend(_check_common(self, bucket_regions or {}))
        return found

    def validate(self, *, bucket_regions: dict[str, str] | None = None) -> Manifest:
        """Raise a ManifestError listing every problem, else return self."""
        found = self.problems(bucket_regions=bucket_regions)
        if found:
            raise manifest_error(found)
        return self

    def _kind_problems(self) -> list[ManifestProblem]:
        return []


@dataclass(kw_only=True)
class S3ImportManifest(Manifest):
    """Import from a device into one S3 bucket (manifestVersion 2.0)."""

    version: ClassVar[str] = "2.0"
    kind_name: ClassVar[str] = "S3 import"

    bucket: str | None = spec("bucket", required=True)
    erase_device: bool | None = spec("eraseDevice", "yesno", required=True, default=True)
    acl: str | None = spec("acl", choices=CANNED_ACLS)
    prefix: str | None = spec("prefix")
    substitutions: dict[str, str] = spec("substitutions", "strmap")
    ignore: list[str] = spec("ignore", "strlist")
    content_types: dict[str, str] = spec("contentTypes", "strmap")
    default_content_type: str | None = spec("defaultContentType")
    set_content_encoding_for_gz_files: bool | None = spec("setContentEncodingForGzFiles", "yesno")
    cache_control: str | None = spec("cacheControl")
    content_disposition: str | None = spec("contentDisposition")
    content_language: str | None = spec("contentLanguage")
    expires: str | None = spec("expires")
    static_metadata: dict[str, str] = spec("staticMetadata", "strmap")
    disk_timestamp_metadata_key: str | None = spec("diskTimestampMetadataKey")
    storage_class: str | None = spec("storageClass")
    pin_code: str | None = spec("pinCode", secret=True)
    true_crypt_password: str | None = spec("trueCryptPassword", secret=True)

    @property
    def effective_log_bucket(self) -> str | None:
        return self.log_bucket or self.bucket

    def data_buckets(self) -> list[str]:
        return [self.bucket] if self.bucket else []

    def _kind_problems(self) -> list[ManifestProblem]:
        found = []
        if self.erase_device is False:
            found.append(
                ManifestProblem(INVALID, "eraseDevice", "imported devices are always erased; set eraseDevice: yes")
            )
        for i, pattern in enumerate(self.ignore):
            try:
                re.compile(pattern)
            except re.error as err:
                found.append(ManifestProblem(INVALID, f"ignore[{i}]", f"not a valid regular expression ({err})"))
        found.extend(_empty_substitutions(self.substitutions))
        return found


@dataclass(kw_only=True)
class S3ExportManifest(Manifest):
    """Export from S3 buckets onto a device (manifestVersion 2.0)."""

    version: ClassVar[str] = "2.0"
    job_type: ClassVar[JobType] = "Export"
    log_name: ClassVar[str] = "export-log-"
    kind_name: ClassVar[str] = "S3 export"

    file_system: str | None = spec("fileSystem", required=True)
    operations: list[ExportOperation] = spec("operations", (ExportOperation,), required=True)
    recovery_directory: str | None = spec("recoveryDirectory")
    substitutions: dict[str, str] = spec("substitutions", "strmap")
    pin_code: str | None = spec("pinCode", secret=True)
    true_crypt_password: str | None = spec("trueCryptPassword", secret=True)

    def data_buckets(self) -> list[str]:
        return [op.export_bucket for op in self.operations if op.export_bucket]

    def _kind_problems(self) -> list[ManifestProblem]:
        found = []
        if not self.log_bucket:
            found.append(ManifestProblem(MISSING, "logBucket", "export jobs need a logBucket; name an existing bucket"))
        if self.file_system and self.file_system.upper() not in EXPORT_FILE_SYSTEMS:
            found.append(
                ManifestProblem(
                    INVALID_FILE_SYSTEM,
                    "fileSystem",
                    f"{self.file_system!r} is not supported; use one of {', '.join(EXPORT_FILE_SYSTEMS)}",
                )
            )
        if not (self.pin_code or self.true_crypt_password):
            found.append(
                ManifestProblem(
                    MISSING, "trueCryptPassword", "exports must be encrypted; set trueCryptPassword or pinCode"
                )
            )
        found.extend(_empty_substitutions(self.substitutions))
        return found


@dataclass(kw_only=True)
class _DeviceImageManifest(Manifest):
    """Whole-device imports (EBS snapshot, Glacier archive), manifestVersion 3.0."""

    version: ClassVar[str] = "3.0"
    destination: ClassVar[str] = ""

    erase_device: bool | None = spec("eraseDevice", "yesno", required=True, default=True)
    operations: list[DeviceOperation] = spec("operations", (DeviceOperation,), required=True)

    def _kind_problems(self) -> list[ManifestProblem]:
        found = []
        if not self.log_bucket:
            found.append(ManifestProblem(MISSING, "logBucket", f"{self.kind_name} jobs need a logBucket"))
        for i, op in enumerate(self.operations):
            if op.destination and op.destination != self.destination:
                found.append(
                    ManifestProblem(
                        INVALID,
                        f"operations[{i}].destination",
                        f"a {self.kind_name} manifest takes destination {self.destination!r}",
                    )
                )
            found.extend(self._operation_problems(i, op))
        return found

    def _operation_problems(self, index: int, op: DeviceOperation) -> list[ManifestProblem]:
        return []


@dataclass(kw_only=True)
class EbsImportManifest(_DeviceImageManifest):
    """Import a whole device as an EBS snapshot (manifestVersion 3.0)."""

    kind_name: ClassVar[str] = "EBS import"
    destination: ClassVar[str] = "ebs-snapshot"


@dataclass(kw_only=True)
class GlacierImportManifest(_DeviceImageManifest):
    """Import a whole device as one Glacier archive (manifestVersion 3.0)."""

    kind_name: ClassVar[str] = "Glacier import"
    destination: ClassVar[str] = "glacier"

    def _operation_problems(self, index: int, op: DeviceOperation) -> list[ManifestProblem]:
        found = []
        where = f"operations[{index}]"
        if not op.vault_name:
            found.append(ManifestProblem(MISSING, f"{where}.vaultName", "name the Glacier vault to import into"))
        if not op.archive_comment:
            found.append(ManifestProblem(MISSING, f"{where}.archiveComment", "describe the archive (max 997 chars)"))
        return found


ManifestLike = Manifest | dict | str
MANIFEST_KINDS: tuple[type[Manifest], ...] = (
    S3ImportManifest,
    S3ExportManifest,
    EbsImportManifest,
    GlacierImportManifest,
)


# --- validation helpers ----------------------------------------------------------------------


def _check_section(section: _Section, where: str) -> list[ManifestProblem]:
    """Required fields, choices, lengths, recursively through nested blocks."""
    found: list[ManifestProblem] = []
    for name, meta in section.field_specs():
        value = getattr(section, name)
        path = f"{where}{meta['key']}"
        if meta["required"] and value in (None, "", [], {}):
            found.append(ManifestProblem(section.missing_code, path, f"required; add {meta['key']}"))
            continue
        if meta["choices"] and value is not None and value not in meta["choices"]:
            found.append(
                ManifestProblem(
                    section.problem_code, path, f"{value!r} is not allowed; use one of {', '.join(meta['choices'])}"
                )
            )
        if meta["max_bytes"] and isinstance(value, str) and len(value.encode()) > meta["max_bytes"]:
            found.append(
                ManifestProblem(section.problem_code, path, f"longer than {meta['max_bytes']} bytes; shorten it")
            )
        if isinstance(value, _Section):
            found.extend(_check_section(value, f"{path}."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, _Section):
                    found.extend(_check_section(item, f"{path}[{i}]."))
    return found


def _check_common(manifest: Manifest, bucket_regions: dict[str, str]) -> list[ManifestProblem]:
    found: list[ManifestProblem] = []
    if manifest.manifest_version != manifest.version:
        found.append(
            ManifestProblem(
                INVALID,
                "manifestVersion",
                f"a {manifest.kind_name} manifest needs manifestVersion {manifest.version}, "
                f"not {manifest.manifest_version}",
            )
        )
    longest_log_key = manifest.log_key("X" * JOB_ID_LENGTH)
    if len(longest_log_key.encode()) > LOG_KEY_LIMIT:
        found.append(
            ManifestProblem(
                INVALID, "logPrefix", f"logPrefix plus the log name exceeds {LOG_KEY_LIMIT} bytes; shorten logPrefix"
            )
        )
    for address in filter(None, (manifest.notification_email or "").split(";")):
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address.strip()):
            found.append(
                ManifestProblem(
                    INVALID, "notificationEmail", f"{address.strip()!r} is not an e-mail address; separate with ';'"
                )
            )
    if manifest.return_address is not None:
        found.extend(_address_problems(manifest.return_address, "returnAddress"))
    found.extend(_region_problems(manifest, bucket_regions))
    return found


def address_problems(address: ReturnAddress) -> list[ManifestProblem]:
    """Problems with a return or label address, all as InvalidAddressException."""
    return _check_section(address, "") + _address_problems(address, "")


def _address_problems(address: ReturnAddress, where: str) -> list[ManifestProblem]:
    prefix = f"{where}." if where else ""
    found = []
    if address.street1 and _PO_BOX.search(address.street1):
        found.append(
            ManifestProblem(INVALID_ADDRESS, f"{prefix}street1", "PO boxes are not served; give a street address")
        )
    country = country_code(address.country)
    if country in ("US", "CA") and not address.state_or_province:
        found.append(
            ManifestProblem(INVALID_ADDRESS, f"{prefix}stateOrProvince", "required for US and Canadian addresses")
        )
    if address.phone_number and not re.fullmatch(r"[0-9+()\-. ]{5,}", address.phone_number):
        found.append(ManifestProblem(INVALID_ADDRESS, f"{prefix}phoneNumber", "give digits, spaces, + ( ) - only"))
    return found


def country_code(country: str | None) -> str:
    """ISO alpha-2 code of a country given as a code or a common name ('' when unknown)."""
    if not country:
        return ""
    text = country.strip().upper()
    return _COUNTRY_ALIASES.get(text, text if len(text) == 2 else "")


def facility_country(region: str) -> str:
    """Country of the AWS facility that serves a bucket region."""
    if region.startswith("eu-"):
        return "IE"
    if region.startswith("ap-southeast-1"):
        return "SG"
    return "US"


def crosses_border(facility: str, country: str) -> bool:
    """Whether shipping between the facility and the address needs customs (EU<->Ireland does not)."""
    if not country or country == facility:
        return False
    return not (facility == "IE" and country in _EU_COUNTRIES)


def _region_problems(manifest: Manifest, bucket_regions: dict[str, str]) -> list[ManifestProblem]:
    regions = {bucket_regions[b] for b in manifest.buckets() if b in bucket_regions}
    if len(regions) > 1:
        listing = ", ".join(f"{b} ({bucket_regions[b]})" for b in manifest.buckets() if b in bucket_regions)
        return [ManifestProblem(MULTIPLE_REGIONS, "bucket", f"buckets are in several regions: {listing}; use one")]
    if not regions or manifest.return_address is None:
        return []
    facility = facility_country(regions.pop())
    country = country_code(manifest.return_address.country)
    if manifest.customs is None and crosses_border(facility, country):
        return [
            ManifestProblem(
                MISSING_CUSTOMS,
                "customs",
                f"the device ships between {country} and the {facility} facility; add a customs block",
            )
        ]
    return []


def _empty_substitutions(substitutions: dict[str, str]) -> list[ManifestProblem]:
    return [
        ManifestProblem(INVALID, f"substitutions[{key!r}]", "an empty search string matches nothing; remove it")
        for key in substitutions
        if key == ""
    ]


# --- parsing ----------------------------------------------------------------------------------


def _normalise_text(text: str) -> str:
    """Accept the spellings found in AWS's own examples: ``key:value`` and a trailing ``;``."""
    text = re.sub(r"(?m)^(\s*(?:-\s+)?[A-Za-z][A-Za-z0-9]*):(?=[^\s/])", r"\1: ", text)
    return re.sub(r"(?m)^(manifestVersion:\s*[0-9.]+)\s*;\s*$", r"\1", text)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(_normalise_text(text), Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader is safe)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise manifest_error(
            [ManifestProblem(MALFORMED, "manifest", f"not valid YAML{where}; check indentation and colons")]
        ) from None


def detect_kind(data: dict[str, Any], job_type: str | None = None) -> type[Manifest]:
    """Pick the manifest class from its version, job type and options."""
    version = str(data.get("manifestVersion", "")).strip()
    if version == "3.0":
        ops = data.get("operations")
        dests = {str(op.get("destination")) for op in ops if isinstance(op, dict)} if isinstance(ops, list) else set()
        return GlacierImportManifest if "glacier" in dests else EbsImportManifest
    if job_type == "Export" or (job_type is None and ("fileSystem" in data or _has_export_ops(data))):
        return S3ExportManifest
    return S3ImportManifest


def _has_export_ops(data: dict[str, Any]) -> bool:
    ops = data.get("operations")
    return isinstance(ops, list) and any(isinstance(op, dict) and "exportBucket" in op for op in ops)


class _Parser:
    """Convert plain data into a section, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ManifestProblem] = []

    def section(self, cls: type[_Section], data: Any, where: str) -> Any:
        if not isinstance(data, dict):
            self.problems.append(
                ManifestProblem(
                    cls.problem_code if where else MALFORMED, where.rstrip(".") or "manifest", "must be a mapping"
                )
            )
            return None
        keys = cls.yaml_keys()
        values: dict[str, Any] = {}
        for key, raw in data.items():
            key = str(key)
            name = keys.get(key)
            if name is None:
                self.problems.append(ManifestProblem(cls.problem_code, f"{where}{key}", _unknown_key_hint(key, keys)))
                continue
            meta = dict(next(m for n, m in cls.field_specs() if n == name))
            values[name] = self.value(meta, raw, f"{where}{key}", cls.problem_code)
        return cls(**{k: v for k, v in values.items() if v is not None})

    def value(self, meta: dict[str, Any], raw: Any, path: str, code: str) -> Any:
        kind = meta["kind"]
        if raw is None or (raw == "" and kind != "str"):
            return None
        if isinstance(kind, tuple):
            if not isinstance(raw, list):
                self.problems.append(ManifestProblem(code, path, "must be a list of mappings (lines starting '- ')"))
                return None
            items = [self.section(kind[0], item, f"{path}[{i}].") for i, item in enumerate(raw)]
            return [i for i in items if i is not None]
        if isinstance(kind, type):
            return self.section(kind, raw, f"{path}.")
        return self.scalar(kind, raw, path, code)

    def scalar(self, kind: str, raw: Any, path: str, code: str) -> Any:
        if kind == "strlist":
            items = raw if isinstance(raw, list) else None
            if items is None or not all(isinstance(i, (str, int, float)) for i in items):
                self.problems.append(ManifestProblem(code, path, "must be a list of strings"))
                return None
            return [str(i) for i in items]
        if kind == "strmap":
            if not isinstance(raw, dict) or not all(isinstance(v, (str, int, float)) for v in raw.values()):
                self.problems.append(ManifestProblem(code, path, "must be a mapping of strings"))
                return None
            return {str(k): str(v) for k, v in raw.items()}
        if isinstance(raw, (dict, list)):
            self.problems.append(ManifestProblem(code, path, "must be a single value, not a list or mapping"))
            return None
        if kind == "yesno":
            parsed = raw if isinstance(raw, bool) else _YES.get(str(raw).strip().lower())
            if parsed is None:
                self.problems.append(ManifestProblem(code, path, f"{raw!r} is not yes or no"))
            return parsed
        if kind == "decimal":
            try:
                return Decimal(str(raw).strip())
            except InvalidOperation:
                self.problems.append(ManifestProblem(code, path, f"{raw!r} is not a number (e.g. 250.00)"))
                return None
        return _text(raw)


def _text(raw: Any) -> str:
    if isinstance(raw, float) and raw.is_integer():
        return f"{raw:.1f}"
    return str(raw)


def _unknown_key_hint(key: str, known: dict[str, str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; remove it"
    return f"unknown field for this manifest kind{hint}"


def _parse(source: ManifestLike, job_type: str | None) -> tuple[Manifest | None, list[ManifestProblem]]:
    """The model as far as it can be read, and every problem met reading it."""
    if isinstance(source, Manifest):
        return source, []
    data = _load_yaml(source) if isinstance(source, str) else source
    if not isinstance(data, dict):
        raise manifest_error([ManifestProblem(MALFORMED, "manifest", "must be a YAML mapping of 'key: value' lines")])
    parser = _Parser()
    model = parser.section(detect_kind(data, job_type), data, "")
    if "manifestVersion" not in data:
        parser.problems.insert(
            0, ManifestProblem(MISSING, "manifestVersion", f"required; add manifestVersion: {model.version}")
        )
    return model, parser.problems


def parse_manifest(source: ManifestLike, *, job_type: str | None = None) -> Manifest:
    """Turn a model, a plain dict or YAML text into a model, without validating it.

    Raises a ManifestError (listing every problem) when the text or data cannot be read
    into the model: not YAML, not a mapping, unknown keys, wrong types.
    """
    model, problems = _parse(source, job_type)
    if problems:
        raise manifest_error(problems)
    assert isinstance(model, Manifest)
    return model


def load_manifest(
    source: ManifestLike, *, job_type: str | None = None, bucket_regions: dict[str, str] | None = None
) -> Manifest:
    """Parse and validate, reporting every problem at once; the entry point operators and emulator share."""
    model, problems = _parse(source, job_type)
    assert isinstance(model, Manifest)
    if job_type is not None and model.job_type != job_type:
        problems.append(
            ManifestProblem(
                INVALID,
                "manifest",
                f"this is a {model.kind_name} manifest but JobType is {job_type}; "
                f"use JobType={model.job_type} or an {job_type.lower()} manifest",
            )
        )
    problems.extend(p for p in model.problems(bucket_regions=bucket_regions) if p not in problems)
    if problems:
        raise manifest_error(problems)
    return model


_SECRET_LINE = re.compile(rf"(?m)^(\s*(?:-\s+)?(?:{'|'.join(SECRET_KEYS)})\s*:[ \t]*)(\S.*?)\s*$")


def redact_manifest_text(text: str) -> str:
    """Mask secret values in manifest text as given (e.g. GetStatus CurrentManifest), keeping its shape."""
    return _SECRET_LINE.sub(lambda m: f"{m.group(1)}{MASK}", text)


def secret_values_in_text(text: str) -> list[str]:
    """Secret values found in manifest text, for registering with Airflow's secret masker."""
    return [m.group(2).strip().strip("'\"") for m in _SECRET_LINE.finditer(text)]


# --- YAML output ------------------------------------------------------------------------------


class _YesNo(str):
    """A yes/no value that YAML should show plain, as AWS's examples do."""


class _ManifestDumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if re.fullmatch(r"\d+\.\d+", value):
        return dumper.represent_scalar("tag:yaml.org,2002:float", value)
    return dumper.represent_str(value)


_ManifestDumper.add_representer(_YesNo, lambda d, v: d.represent_scalar("tag:yaml.org,2002:bool", str(v)))
_ManifestDumper.add_representer(str, _represent_text)
