"""One line per failure at the Hugging Face Hub boundary.

`huggingface_hub` and `datasets` raise long multi-line errors, and when the
network is down `datasets` retries for about 20 s before saying so. kerastune
asks the hub for a repository's metadata first (one quick request), and
turns what goes wrong into a `KerastuneError` that says what to do.
"""

import contextlib

from huggingface_hub import errors as hub_errors

from kerastune.errors import KerastuneError

LOGIN = "log in with `hf auth login` or set HF_TOKEN"


class Offline(KerastuneError):
    """The hub could not be reached (no network, or HF_HUB_OFFLINE)."""


def is_network_error(error: BaseException) -> bool:
    """A connection that failed, timed out or was refused, or offline mode (not an HTTP answer)."""
    if isinstance(error, hub_errors.HfHubHTTPError):
        return False
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ConnectionError", "TransportError", "TimeoutException", "OfflineModeIsEnabled",
                         "ConnectError", "Timeout", "LocalEntryNotFoundError"})


def explain(error: BaseException, kind: str, repo_id: str, revision: str | None) -> KerastuneError:
    """The one-line `KerastuneError` for an exception from huggingface_hub or datasets."""
    at = f" at revision '{revision}'" if revision else ""
    if isinstance(error, hub_errors.GatedRepoError):
        return KerastuneError(
            f"the {kind} '{repo_id}' is gated or private: accept its terms on its hub page, then {LOGIN}"
        )
    if isinstance(error, hub_errors.RevisionNotFoundError):
        return KerastuneError(f"the {kind} '{repo_id}' has no revision '{revision}' (use a branch, tag, "
                              "commit or refs/pr/N that exists)")
    if isinstance(error, hub_errors.RepositoryNotFoundError):
        return KerastuneError(f"no {kind} '{repo_id}' on the Hugging Face Hub (if it is private, {LOGIN})")
    if isinstance(error, hub_errors.RemoteEntryNotFoundError):
        return KerastuneError(f"the {kind} '{repo_id}'{at} lacks a file kerastune needs: {_first_line(error)}")
    if is_network_error(error):
        return not_cached(kind, repo_id, revision)
    return KerastuneError(f"could not fetch the {kind} '{repo_id}'{at} from the Hugging Face Hub: "
                          f"{type(error).__name__}: {_first_line(error)}")


def not_cached(kind: str, repo_id: str, revision: str | None) -> Offline:
    at = f" at revision '{revision}'" if revision else ""
    return Offline(f"no network, and the {kind} '{repo_id}'{at} is not in the local cache "
                   "(connect once to download it; HF_HOME sets where the cache is)")


@contextlib.contextmanager
def hub_errors_as_lines(kind: str, repo_id: str, revision: str | None = None):
    """Run hub calls; any failure becomes one clear `KerastuneError`."""
    try:
        yield
    except KerastuneError:
        raise
    except Exception as e:
        raise explain(e, kind, repo_id, revision) from None


def _first_line(error) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
