"""`physworld push`: a dataset or a trained model directory to a Hugging Face Hub repository.

huggingface_hub does the work (create_repo, then upload_folder, which uploads only what changed);
this module checks what is being sent, writes a model card first where a run has none, skips
physworld's temporaries, and turns every failure into one line: no hub reachable (this machine has no
network but package registries), no token, a refused repository.
"""

from __future__ import annotations

import os
from pathlib import Path

HUB_HINT = 'huggingface_hub is not installed: pip install "physworld[hub]"'
DEFAULT_ENDPOINT = "https://huggingface.co"


class PushError(ValueError):
    """The push cannot go ahead or failed: one line naming the cause and the fix."""


def _kind_of(path: Path, repo_type: str) -> None:
    if not path.is_dir():
        raise PushError(
            f"--path {path}: not a directory; pass a dataset directory or a training run directory"
        )
    is_dataset = (path / "manifest.json").is_file()
    is_run = (path / "config.yaml").is_file()
    if repo_type == "dataset" and not is_dataset:
        raise PushError(
            f"--path {path}: no manifest.json, so not a finished physworld dataset; finish it with "
            "`physworld generate` (same arguments) or pass --type model"
        )
    if repo_type == "model" and not is_run:
        raise PushError(
            f"--path {path}: no config.yaml, so not a training run directory; pass the directory "
            "`physworld train` wrote, or --type dataset"
        )


def _is_network_error(e: BaseException) -> bool:
    """Connection refused, DNS, TLS, timeouts: OSError, or httpx's / requests' transport errors (which
    library depends on the huggingface_hub version, so they are told by name)."""
    names = {c.__name__ for c in type(e).__mro__}
    return isinstance(e, OSError) or bool(names & {"TransportError", "RequestException", "TimeoutException"})


def push(
    path, repo_id: str, repo_type: str = "model", private: bool = False, token: str | None = None
) -> str:
    """Upload the directory at `path` to the Hub repository `repo_id`; returns the commit's URL."""
    if repo_type not in ("model", "dataset"):
        raise PushError(f"--type must be model or dataset, got {repo_type!r}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"--repo-id {repo_id!r}: expected USER/NAME (or ORG/NAME)")
    path = Path(path)
    _kind_of(path, repo_type)
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError
    except ModuleNotFoundError as e:
        raise PushError(HUB_HINT) from e
    if repo_type == "model" and not (path / "README.md").is_file():
        from physworld.export.card import write_card

        write_card(path)  # the Hub shows the card; without one a model repo says nothing of itself
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type=repo_type,
            folder_path=str(path),
            ignore_patterns=[".*", "**/.*", "**/*.tmp*"],  # physworld's temporaries and lock files
            commit_message=f"physworld push of {path.name}",
        )
    except LocalTokenNotFoundError:
        raise PushError("no Hugging Face token: run `hf auth login` or set HF_TOKEN") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "check HF_TOKEN (it needs write access)" if status in (401, 403) else "check --repo-id"
        raise PushError(f"the Hub at {endpoint} refused the push (HTTP {status}: {first}); {hint}") from None
    except Exception as e:
        if not _is_network_error(e):
            raise
        raise PushError(
            f"no Hugging Face Hub reachable at {endpoint} ({type(e).__name__}); check the network, a proxy, "
            "or HF_ENDPOINT for a self-hosted hub"
        ) from None
    return str(getattr(info, "commit_url", info))
