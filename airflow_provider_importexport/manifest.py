"""The manifest model: build, parse, validate and render AWS Import/Export manifests.

One model serves the operators (which validate before any call is made) and the emulator
(which answers CreateJob/UpdateJob with the very same verdict), so the two cannot disagree.

Parsing reads every YAML scalar as text (a ``yaml.BaseLoader``: safe, and a ``deviceId`` of
``01234`` stays ``01234`` instead of becoming an octal number) and converts each field by
the model's own type. Manifest text is untrusted (the emulator reads it off the network), so
the reader refuses oversized text, deep nesting and YAML anchors/aliases while it scans,
before any work can grow. Validation collects every problem at once; each names the field,
the fix and the service error code the real service would answer with. Secrets are found by
the same reader, so masking sees exactly what the model parses, in every YAML style.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import difflib
import re
from collections.abc import Callable, Iterator, Mapping
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
#: Real manifests are a few KB (the longest fields, logPrefix and archiveComment, stay near
#: 1 KB); the cap bounds the time and memory one request can make the reader spend.
MAX_MANIFEST_BYTES = 64 * 1024
#: Nested mappings/lists, counted from the top mapping. A manifest needs 3 (operations ->
#: item -> field); the cap keeps the recursive YAML composer far from Python's stack limit.
MAX_MANIFEST_DEPTH = 10
#: Keys, values and list items together. A large manifest has a few hundred; reading costs
#: per value (the pure-Python YAML reader), so this bounds the time more tightly than bytes do.
MAX_MANIFEST_VALUES = 5000
#: Problems spelled out in an error's message (all of them stay in ``error.problems``).
MAX_LISTED_PROBLEMS = 50
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


def _shown(value: Any, limit: int = 60) -> str:
    """A value quoted for a problem message, cut short: a hostile value must not swell every error."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]} ({len(text)} characters)"


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
    listing = "; ".join(str(p) for p in problems[:MAX_LISTED_PROBLEMS])
    if len(problems) > MAX_LISTED_PROBLEMS:
        listing += f"; and {len(problems) - MAX_LISTED_PROBLEMS} more"
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

    def problems(self, *, bucket_regions: BucketRegions | None = None) -> list[ManifestProblem]:
        """Every problem with this manifest; empty when it is valid."""
        found = _check_section(self, "")
        found.extend(self._kind_problems())
        found.extend(_check_common(self, _region_lookup(bucket_regions)))
        return found

    def validate(self, *, bucket_regions: BucketRegions | None = None) -> Manifest:
        """Raise a ManifestError listing every problem, else return self."""
        found = self.problems(bucket_regions=bucket_regions)
        if found:
            raise manifest_error(found)
        return self

    def _kind_problems(self) -> list[ManifestProblem]:
        return []

    def device_folder_problems(self) -> list[ManifestProblem]:
        """Folders the job writes on its device that would leave it (exports only)."""
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


#: Longest file or folder name most file systems take, in bytes.
MAX_NAME_BYTES = 255


def device_path_problem(relative: str) -> str | None:
    """Why ``relative`` cannot name a place inside a device's folder, or None when it can.

    One rule for the manifest's folders (checked before any call) and for the emulator's
    writes: an export must never write outside the device.
    """
    if relative.startswith("/"):
        return "must be relative to the device's root, not an absolute path"
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "may not have empty, '.' or '..' parts: it must stay inside the device"
    if "\x00" in relative:
        return "may not contain NUL characters"
    if any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        return f"may not have a part longer than {MAX_NAME_BYTES} bytes"
    return None


def _folder_problems(folders: list[tuple[str, str | None, str]]) -> list[ManifestProblem]:
    found = []
    for name, value, example in folders:
        why = None if value is None else device_path_problem(value.rstrip("/"))
        if why:
            fix = f"use a folder relative to the device's root, e.g. {example!r}"
            found.append(ManifestProblem(INVALID, name, f"{_shown(value)} {why}; {fix}"))
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
                    f"{_shown(self.file_system)} is not supported; use one of {', '.join(EXPORT_FILE_SYSTEMS)}",
                )
            )
        if not (self.pin_code or self.true_crypt_password):
            found.append(
                ManifestProblem(
                    MISSING, "trueCryptPassword", "exports must be encrypted; set trueCryptPassword or pinCode"
                )
            )
        found.extend(_empty_substitutions(self.substitutions))
        found.extend(self.device_folder_problems())
        return found

    def device_folder_problems(self) -> list[ManifestProblem]:
        """Folders on the device this export writes to must stay inside the device."""
        folders = [("recoveryDirectory", self.recovery_directory, "EXPORT-RECOVERY")]
        folders += [
            (f"operations[{i}].targetDirectory", op.target_directory, "backup") for i, op in enumerate(self.operations)
        ]
        return _folder_problems(folders)


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
#: Region of each bucket the caller knows: a mapping, or a look-up that answers None for unknown buckets.
BucketRegions = Mapping[str, str] | Callable[[str], str | None]
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
            python = f" ({name}= in Python)" if name != meta["key"] else ""
            found.append(ManifestProblem(section.missing_code, path, f"required; add {meta['key']}{python}"))
            continue
        if meta["choices"] and value is not None and value not in meta["choices"]:
            found.append(
                ManifestProblem(
                    section.problem_code,
                    path,
                    f"{_shown(value)} is not allowed; use one of {', '.join(meta['choices'])}",
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


def _check_common(manifest: Manifest, bucket_regions: Callable[[str], str | None]) -> list[ManifestProblem]:
    found: list[ManifestProblem] = []
    if manifest.manifest_version != manifest.version:
        found.append(
            ManifestProblem(
                INVALID,
                "manifestVersion",
                f"a {manifest.kind_name} manifest needs manifestVersion {manifest.version}, "
                f"not {_shown(manifest.manifest_version)}",
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
                    INVALID,
                    "notificationEmail",
                    f"{_shown(address.strip())} is not an e-mail address; separate with ';'",
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


def _region_lookup(bucket_regions: BucketRegions | None) -> Callable[[str], str | None]:
    if bucket_regions is None:
        return lambda bucket: None
    if isinstance(bucket_regions, Mapping):
        return bucket_regions.get
    return bucket_regions


def _region_problems(manifest: Manifest, region_of: Callable[[str], str | None]) -> list[ManifestProblem]:
    known = {b: region for b in manifest.buckets() if (region := region_of(b))}
    regions = set(known.values())
    if len(regions) > 1:
        listing = ", ".join(f"{b} ({region})" for b, region in known.items())
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


# --- reading untrusted YAML -------------------------------------------------------------------

#: AWS's own examples write ``key:value`` without a space; YAML reads that as one plain scalar.
_MISSING_SPACE = re.compile(r"(?m)^([ \t]*(?:-[ \t]+)?[A-Za-z][A-Za-z0-9]*:)(?=[^\s/])")
#: ... and one CLI example ends the version line with ``;``.
_VERSION_SEMICOLON = re.compile(r"(?m)^([ \t]*manifestVersion[ \t]*:[ \t]*[0-9.]+)([ \t]*;[ \t]*)(?=\r?$)")


class _Spelling:
    """Manifest text with AWS's example spellings fixed, mapping positions back to the original.

    Masking edits the original text at the positions the reader reports, so every edit made
    here must be undoable; the ``key:value`` fix is applied only when the text does not read
    as a YAML mapping without it (inside a block scalar ``a:b`` is content, not a key).
    """

    def __init__(self, original: str, *, add_spaces: bool) -> None:
        edits = [(m.end(1), m.end(2), "") for m in _VERSION_SEMICOLON.finditer(original)]
        if add_spaces:
            edits += [(m.end(1), m.end(1), " ") for m in _MISSING_SPACE.finditer(original)]
        parts: list[str] = []
        self._fixed_starts, self._original_starts = [0], [0]
        done = length = 0
        for start, end, insert in sorted(edits):
            parts += [original[done:start], insert]
            length += start - done + len(insert)
            done = end
            self._fixed_starts.append(length)
            self._original_starts.append(done)
        parts.append(original[done:])
        self.text = "".join(parts)
        self.changed = bool(edits)

    def original_index(self, index: int) -> int:
        """Where a position of the fixed text lies in the original text."""
        i = bisect.bisect_right(self._fixed_starts, index) - 1
        return self._original_starts[i] + index - self._fixed_starts[i]


class _Refused(Exception):
    """The text breaks a reader limit; carries the problem to report."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(f"{message}{_at(mark)}")


def _at(mark: yaml.Mark | None) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


class _ManifestLoader(yaml.BaseLoader):
    """A BaseLoader that refuses anchors, aliases, deep nesting and too many values as it meets them.

    Aliases let ~450 bytes stand for a billion values (the "billion laughs"), every nesting
    level costs the composer stack frames, and every value costs time: all are refused while
    the text is still being read, before any work can grow; manifests need none of them.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._values = 0

    def fetch_alias(self) -> None:
        raise _Refused(
            "uses a YAML alias (*name); manifests may not use anchors or aliases: write each value out in full",
            self.get_mark(),
        )

    def fetch_anchor(self) -> None:
        raise _Refused(
            "uses a YAML anchor (&name); manifests may not use anchors or aliases: write each value out in full",
            self.get_mark(),
        )

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # Block levels open indents, flow levels raise flow_level: together a lower bound of the depth.
        self._check_depth(len(self.indents) + self.flow_level + 1)
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        opened = super().add_indent(column)
        if opened:
            self._check_depth(len(self.indents) + self.flow_level)
        return opened

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._values += 1
        if self._values > MAX_MANIFEST_VALUES:
            raise _Refused(
                f"has more than {MAX_MANIFEST_VALUES} keys, values and list items; "
                "a manifest needs a few hundred: remove unused entries",
                self.get_mark(),
            )
        return super().compose_node(parent, index)

    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        with self._nested():
            return super().compose_sequence_node(anchor)

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        with self._nested():
            return super().compose_mapping_node(anchor)

    @contextlib.contextmanager
    def _nested(self) -> Iterator[None]:
        """One level deeper while a list or map is built, checked against the limit."""
        self._depth += 1
        try:
            self._check_depth(self._depth)
            yield
        finally:
            self._depth -= 1

    def _check_depth(self, depth: int) -> None:
        if depth > MAX_MANIFEST_DEPTH:
            raise _Refused(_too_deep(), self.get_mark())


def _too_deep() -> str:
    return (
        f"nests lists/mappings deeper than {MAX_MANIFEST_DEPTH} levels; a manifest needs at most 3 "
        "(operations -> item -> field): flatten it"
    )


@dataclass(frozen=True)
class _Document:
    """Manifest text read safely: its node tree (positions, for masking) and its plain data (for the model)."""

    text: str
    spelling: _Spelling
    node: yaml.Node | None
    data: Any

    def span(self, node: yaml.Node) -> tuple[int, int]:
        """Where a node lies in the original text."""
        return self.spelling.original_index(node.start_mark.index), self.spelling.original_index(node.end_mark.index)


def _read_yaml(text: str) -> _Document:
    """Read manifest text within the limits; a ManifestError (MalformedManifestException) otherwise.

    The text is first read as written; only if that gives no mapping is it read again with
    the ``key:value`` spelling of AWS's examples fixed.
    """
    size = len(text) if len(text) > MAX_MANIFEST_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MANIFEST_BYTES:
        too_big = (
            f"is {size} bytes or more, over the {MAX_MANIFEST_BYTES}-byte limit; "
            "a manifest needs a few KB: remove unused entries and very long values"
        )
        problems = [ManifestProblem(MALFORMED, "manifest", too_big)]
        refusal = _refusal_in(text[:_GLIMPSE])
        if refusal:
            problems.append(ManifestProblem(MALFORMED, "manifest", refusal))
        raise manifest_error(problems)
    failure: str | None = None
    doc: _Document | None = None
    for add_spaces in (False, True):
        spelling = _Spelling(text, add_spaces=add_spaces)
        if add_spaces and not spelling.changed:
            break
        try:
            doc = _compose(text, spelling)
        except _Refused as refused:
            raise _malformed(str(refused)) from None
        except yaml.YAMLError as err:
            failure = f"is not valid YAML{_at(getattr(err, 'problem_mark', None))}; check indentation and colons"
            continue
        if isinstance(doc.data, dict):
            return doc
    if failure is not None:
        raise _malformed(failure)
    assert doc is not None
    return doc


#: How much of a too-big text is scanned to say whether it also nests too deep or uses aliases.
_GLIMPSE = 4096


def _refusal_in(text: str) -> str | None:
    """Why scanning stops at an anchor, alias or deep nesting in this (bounded) text, if it does."""
    loader = _ManifestLoader(text)
    try:
        while loader.check_token():
            loader.get_token()
    except _Refused as refused:
        return str(refused)
    except yaml.YAMLError:  # a cut-off text may end anywhere: only the limits matter here
        return None
    finally:
        loader.dispose()
    return None


def _compose(text: str, spelling: _Spelling) -> _Document:
    loader = _ManifestLoader(spelling.text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:  # a backstop: the depth limit stops nesting long before this
        raise _Refused(_too_deep(), None) from None
    finally:
        loader.dispose()
    return _Document(text, spelling, node, data)


def _malformed(message: str) -> exc.ManifestError:
    return manifest_error([ManifestProblem(MALFORMED, "manifest", message)])


# --- parsing ----------------------------------------------------------------------------------


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


def _evident_kind(data: dict[str, Any]) -> type[Manifest] | None:
    """The kind the manifest's own fields show (None when they show none), whatever JobType says.

    A manifest sent with the other JobType is then advised as what it is ("use JobType=Export"),
    not field by field into the other kind ("fileSystem: remove it", "bucket: required").
    """
    if str(data.get("manifestVersion", "")).strip() == "3.0":
        return detect_kind(data)
    if "fileSystem" in data or _has_export_ops(data):
        return S3ExportManifest
    return S3ImportManifest if "bucket" in data else None


def _has_export_ops(data: dict[str, Any]) -> bool:
    ops = data.get("operations")
    return isinstance(ops, list) and any(isinstance(op, dict) and "exportBucket" in op for op in ops)


class _Parser:
    """Convert plain data into a section, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ManifestProblem] = []
        # Spelling hints are the slowest step; past this many unknown keys they are no typos.
        self.hints_left = MAX_LISTED_PROBLEMS

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
                self.hints_left -= 1
                hint = _unknown_key_hint(key, keys if self.hints_left >= 0 else {})
                self.problems.append(ManifestProblem(cls.problem_code, f"{where}{key}", hint))
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
            # An unreadable item stays as an empty one, so that later items keep their numbers.
            return [self.section(kind[0], item, f"{path}[{i}].") or kind[0]() for i, item in enumerate(raw)]
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
                self.problems.append(ManifestProblem(code, path, f"{_shown(raw)} is not yes or no"))
            return parsed
        if kind == "decimal":
            try:
                return Decimal(str(raw).strip())
            except InvalidOperation:
                self.problems.append(ManifestProblem(code, path, f"{_shown(raw)} is not a number (e.g. 250.00)"))
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


def _read(source: ManifestLike, job_type: str | None) -> tuple[Manifest, list[ManifestProblem]]:
    """The model as far as it can be read, and every problem met reading it.

    Raises only when there is no mapping to read at all (not YAML, over a limit, a list...).
    """
    if isinstance(source, Manifest):
        return source, []
    data = _read_yaml(source).data if isinstance(source, str) else source
    if not isinstance(data, dict):
        raise _malformed("must be a YAML mapping of 'key: value' lines")
    parser = _Parser()
    evident = _evident_kind(data)
    kind = evident if evident is not None and evident.job_type != job_type else detect_kind(data, job_type)
    model = parser.section(kind, data, "")
    if "manifestVersion" not in data:
        parser.problems.insert(
            0, ManifestProblem(MISSING, "manifestVersion", f"required; add manifestVersion: {model.version}")
        )
    return model, parser.problems


def _every_problem(
    model: Manifest, read_problems: list[ManifestProblem], job_type: str | None, bucket_regions: BucketRegions | None
) -> list[ManifestProblem]:
    """Reading and validation problems together, so that one answer lists everything to fix.

    A field that could not be read is reported once, by the reader, not again (nor its
    contents) as missing.
    """
    found = list(read_problems)
    if job_type is not None and model.job_type != job_type:
        found.insert(
            0,
            ManifestProblem(
                INVALID,
                "manifest",
                f"this is a {model.kind_name} manifest but JobType is {job_type}; "
                f"use JobType={model.job_type} (job_type={model.job_type!r} in Airflow) "
                f"or an {job_type.lower()} manifest",
            ),
        )
    unreadable = {p.field for p in read_problems}
    seen = set(found)
    for problem in model.problems(bucket_regions=bucket_regions):
        if problem not in seen and not _within(problem.field, unreadable):
            found.append(problem)
            seen.add(problem)
    return found


def _within(field: str, fields: set[str]) -> bool:
    """Whether the field, or the block or list item holding it, is one of the fields."""
    return field in fields or any(field[: m.start()] in fields for m in re.finditer(r"[.\[]", field))


def parse_manifest(source: ManifestLike, *, job_type: str | None = None) -> Manifest:
    """Turn a model, a plain dict or YAML text into a model, without validating it.

    Raises a ManifestError when the text or data cannot be read into the model (not YAML,
    over a limit, not a mapping, unknown keys, wrong types); the error then lists every
    problem, validation problems too, so that nobody has to fix a manifest in rounds.
    """
    model, problems = _read(source, job_type)
    if problems:
        raise manifest_error(_every_problem(model, problems, job_type, None))
    return model


def load_manifest(
    source: ManifestLike, *, job_type: str | None = None, bucket_regions: BucketRegions | None = None
) -> Manifest:
    """Parse and validate, reporting every problem at once; the entry point operators and emulator share."""
    model, problems = _read(source, job_type)
    problems = _every_problem(model, problems, job_type, bucket_regions)
    if problems:
        raise manifest_error(problems)
    return model


# --- secrets -----------------------------------------------------------------------------------


def _every_spec() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of every manifest kind, nested blocks included, in declaration order."""
    sections: list[type[_Section]] = list(MANIFEST_KINDS)
    for cls in sections:  # grows while iterating: nested blocks are visited after their parents
        for name, meta in cls.field_specs():
            yield name, meta
            kind = meta["kind"]
            nested = kind[0] if isinstance(kind, tuple) else kind
            if isinstance(nested, type) and nested not in sections:
                sections.append(nested)


#: The secret fields' YAML keys, as the model declares them (``secret=True``).
SECRET_KEYS: tuple[str, ...] = tuple(dict.fromkeys(meta["key"] for _, meta in _every_spec() if meta["secret"]))
#: Names a secret field may go by: its YAML key or the model's attribute name.
SECRET_FIELD_NAMES = frozenset(SECRET_KEYS) | {name for name, meta in _every_spec() if meta["secret"]}
_KNOWN_KEYS = frozenset(meta["key"] for _, meta in _every_spec())
_MASKED = f'"{MASK}"'  # a mask that stays a string in YAML and JSON alike (a bare *** is a YAML alias)


def _loose(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


_SECRET_LOOSE = frozenset(_loose(name) for name in SECRET_FIELD_NAMES)


def is_secret_key(key: Any) -> bool:
    """Whether a key names a secret field, however spelt (``pinCode``, ``pin_code``, ``PINCODE``).

    Masking errs towards hiding: a misspelt key still carries the secret its author meant.
    """
    return isinstance(key, str) and _loose(key) in _SECRET_LOOSE


def secret_values_in_data(data: Any) -> list[str]:
    """Secret values in plain manifest data (a dict as DAG authors write it), at any depth."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[tuple[Any, bool]] = [(data, False)]
    while todo:
        value, secret = todo.pop()
        if isinstance(value, (dict, list, tuple)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            todo.extend((v, secret or is_secret_key(k)) for k, v in reversed(list(items)))
        elif secret and value is not None and str(value) not in ("", MASK):
            found.append(str(value))
    return list(dict.fromkeys(found))


def _walk(node: yaml.Node, secret: bool = False) -> Iterator[tuple[yaml.Node, bool]]:
    """Every scalar, and every node stored under a secret key (whole), flagged whether secret."""
    if secret:
        yield node, True
    elif isinstance(node, yaml.ScalarNode):
        yield node, False
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(key)
            yield from _walk(value, isinstance(key, yaml.ScalarNode) and is_secret_key(key.value))


def _scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(key)
            yield from _scalars(value)


def _secret_scalars(doc: _Document) -> list[yaml.ScalarNode]:
    if doc.node is None:
        return []
    found = (s for node, secret in _walk(doc.node) if secret for s in _scalars(node))
    return [s for s in found if s.value and s.value != MASK]


def _secrets(doc: _Document) -> list[str]:
    """Each secret as read, and without the surrounding blanks a block scalar adds (``|`` ends in a newline)."""
    found = [text for node in _secret_scalars(doc) for text in (node.value, node.value.strip()) if text]
    return list(dict.fromkeys(found))


def secret_values_in_text(text: str) -> list[str]:
    """Secret values in manifest text, for registering with Airflow's secret masker.

    Each secret as parsed, then each line of it as written (a folded or escaped secret in a
    logged manifest is masked too). Unreadable text gives best guesses: registering too much
    only masks more.
    """
    try:
        doc = _read_yaml(text)
    except exc.ManifestError:
        return _guessed_secrets(text)
    written = [line for node in _secret_scalars(doc) for line in _written_lines(doc, node)]
    return list(dict.fromkeys([*_secrets(doc), *written]))


def _written_lines(doc: _Document, node: yaml.ScalarNode) -> list[str]:
    start, end = doc.span(node)
    lines = doc.text[start:end].splitlines()
    if node.style in ("|", ">"):
        lines = lines[1:]  # the header: indicator, chomping, comment
    quotes = node.style if node.style in ("'", '"') else ""
    return [stripped for line in lines if (stripped := line.strip().strip(quotes).strip())]


_SECRET_KEY_IN_LINE = re.compile(
    rf"""(?i)(?<![0-9a-z_])["']?(?:{"|".join(sorted(map(re.escape, SECRET_FIELD_NAMES), key=len, reverse=True))})"""
    r"""["']?[ \t]*:"""
)
_GUESSED_CONTINUATION_LINES = 50


def _guessed_secrets(text: str) -> list[str]:
    """What follows each secret key in text the reader refused: the rest of its line and its indented lines."""
    found: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        for match in _SECRET_KEY_IN_LINE.finditer(line):
            rest = re.split(r"[ \t]#", line[match.end() :])[0].strip()
            found += [rest.strip("\"'"), re.split(r"[,}\]]", rest)[0].strip().strip("\"'")]
            indent = len(line) - len(line.lstrip())
            for following in lines[number + 1 : number + 1 + _GUESSED_CONTINUATION_LINES]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                found.append(following.strip().strip("\"'"))
    return [
        value for value in dict.fromkeys(found) if value and value != MASK and not re.fullmatch(r"[|>][-+0-9]*", value)
    ]


def redact_manifest_text(text: str) -> str:
    """Mask every secret in manifest text as given (e.g. GetStatus CurrentManifest), keeping its shape.

    The secrets are found by reading the text as the model does, so every YAML style counts;
    each is masked where it is written (its value, copies inside other values, comments),
    and the result still reads as YAML. Text that cannot be read keeps only its known keys.
    """
    try:
        doc = _read_yaml(text)
    except exc.ManifestError:
        return _redact_unreadable(text)
    secrets = _secrets(doc)
    if not secrets:
        return text
    for redact in (_redact_in_place, _redact_by_rendering):
        redacted = redact(doc, secrets)
        if _hides(redacted, secrets):
            return redacted
    fallback = _redact_unreadable(text)
    return "" if _leaks(fallback, secrets) else fallback


def _leaks(text: str, secrets: list[str]) -> bool:
    return any(secret in text for secret in secrets)


def _mask_in(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _hides(text: str, secrets: list[str]) -> bool:
    """No secret is left in the text, as written or as read, and the text still reads."""
    if _leaks(text, secrets):
        return False
    try:
        doc = _read_yaml(text)
    except exc.ManifestError:
        return False
    return doc.node is None or not any(_leaks(node.value, secrets) for node in _scalars(doc.node))


_YAML_BLANKS = " \t\r\n\x85\u2028\u2029"
_COMMENT = re.compile(r"(?<![^ \t\r\n])#[^\r\n]*")


def _redact_in_place(doc: _Document, secrets: list[str]) -> str:
    """Replace what is written at each secret's position, then mask copies in other values and comments."""
    text, edits, covered = doc.text, [], []
    for node, secret in _walk(doc.node) if doc.node is not None else ():
        start, end = doc.span(node)
        covered.append((start, end))
        written = text[start:end]
        if secret and isinstance(node, yaml.ScalarNode) and not node.value:
            continue  # nothing to hide, and an empty value has no width to write the mask into
        if secret:
            masked = _MASKED
            line_start = text.rfind("\n", 0, start) + 1
            if not isinstance(node, yaml.ScalarNode) and not text[line_start:start].strip():
                masked = f"  {masked}"  # a list written under its key, at the key's column, becomes a scalar
        elif isinstance(node, yaml.ScalarNode) and (_leaks(node.value, secrets) or _leaks(written, secrets)):
            # A copy of a secret, or a value whose escapes spell one (\U00010000 holds 0000): write it anew.
            masked = _double_quoted(_mask_in(node.value, secrets))
        else:
            continue
        # Keep the line breaks a block scalar's span ends with (only YAML's blanks: U+00A0 is content).
        edits.append((start, end, masked + written[len(written.rstrip(_YAML_BLANKS)) :]))
    done = 0
    for start, end in [*sorted(covered), (len(text), len(text))]:
        for comment in _COMMENT.finditer(text, done, max(done, start)):
            if _leaks(comment.group(), secrets):
                edits.append((comment.start(), comment.end(), _mask_in(comment.group(), secrets)))
        done = max(done, end)
    parts, done = [], 0
    for start, end, replacement in sorted(edits):
        parts += [text[done:start], replacement]
        done = end
    parts.append(text[done:])
    return "".join(parts)


def _double_quoted(value: str) -> str:
    """A one-line YAML double-quoted scalar (escapes included) for any string."""
    return yaml.dump(value, Dumper=yaml.SafeDumper, default_style='"', width=1 << 30, allow_unicode=True).rstrip("\n")


def _redact_by_rendering(doc: _Document, secrets: list[str]) -> str:
    """The read data rendered again with every secret masked: loses comments and layout, never a secret."""
    return yaml.dump(
        _masked_data(doc.data, secrets),
        Dumper=_ManifestDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )


def _masked_data(value: Any, secrets: list[str], secret: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            _mask_in(str(k), secrets): _masked_data(v, secrets, secret or is_secret_key(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked_data(v, secrets, secret) for v in value]
    if value is None:
        return None
    return MASK if secret else _mask_in(str(value), secrets)


_KEY_LINE = re.compile(r"([ \t]*(?:-[ \t]+)*)([A-Za-z][A-Za-z0-9]*)([ \t]*:)(.*)", re.DOTALL)


def _redact_unreadable(text: str) -> str:
    """Text that cannot be read, so where its secrets lie is unknown: keep the model's keys, mask everything else."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        match = _KEY_LINE.fullmatch(body)
        if match and match.group(2) in _KNOWN_KEYS:
            value = f" {_MASKED}" if match.group(4).strip() else ""
            out.append(f"{match.group(1)}{match.group(2)}{match.group(3)}{value}{ending}")
        elif body.strip():
            out.append(f"{body[: len(body) - len(body.lstrip())]}{_MASKED}{ending}")
        else:
            out.append(line)
    return "".join(out)


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
