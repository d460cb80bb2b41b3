"""One error hierarchy for the appliance: stable codes, HTTP statuses, translatable messages.

Every error a user can meet is an :class:`EnclaveError` subclass. The ``code`` is stable and
machine-readable (clients and scripts match on it); ``message_key`` names the translatable
message; ``http_status`` is what the REST layer answers. ``to_problem`` renders RFC 9457
``application/problem+json``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EnclaveError(Exception):
    """Base class: a typed error with a stable code and a human message."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    default_message: ClassVar[str] = "Something went wrong inside Enclave."

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or self.default_message
        self.context = context
        super().__init__(self.message)

    @property
    def message_key(self) -> str:
        """The translation key for this error's message."""
        return f"error.{self.code}"

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 problem details, with our stable ``code`` as an extension member."""
        body: dict[str, Any] = {
            "type": f"urn:enclave:error:{self.code}",
            "title": self.title,
            "status": self.http_status,
            "detail": self.message,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        # Keys starting with "_" are for the server (audit, logs), never sent to the client.
        safe = {
            k: v
            for k, v in self.context.items()
            if not k.startswith("_") and isinstance(v, str | int | float | bool)
        }
        if safe:
            body["context"] = safe
        return body


# --- lifecycle ------------------------------------------------------------------------------


class Sealed(EnclaveError):
    code = "sealed"
    http_status = 503
    title = "Appliance sealed"
    default_message = "Enclave is sealed. Unseal it with the admin passphrase to continue."


class NotInitialised(EnclaveError):
    code = "not_initialised"
    http_status = 503
    title = "Appliance not initialised"
    default_message = (
        "Enclave has not been set up yet. Run `enclave init` or open the first-run page."
    )


class AlreadyInitialised(EnclaveError):
    code = "already_initialised"
    http_status = 409
    title = "Already initialised"
    default_message = "This Enclave home is already initialised; nothing was changed."


class AlreadyUnsealed(EnclaveError):
    code = "already_unsealed"
    http_status = 409
    title = "Already unsealed"
    default_message = "Enclave is already unsealed."


class HomeLocked(EnclaveError):
    code = "home_locked"
    http_status = 409
    title = "Home in use"
    default_message = "Another Enclave process is using this home; stop it first."


# --- keys -----------------------------------------------------------------------------------


class WrongPassphrase(EnclaveError):
    code = "wrong_passphrase"
    http_status = 401
    title = "Wrong passphrase"
    default_message = "The passphrase is not correct. Nothing was changed."


class TooManyAttempts(EnclaveError):
    code = "too_many_attempts"
    http_status = 429
    title = "Too many attempts"
    default_message = "Too many wrong passphrases. Wait before trying again."


class WeakPassphrase(EnclaveError):
    code = "weak_passphrase"
    http_status = 422
    title = "Passphrase too weak"
    default_message = "The passphrase must be at least 12 characters long."


class VaultMissing(EnclaveError):
    code = "vault_missing"
    http_status = 503
    title = "Vault missing"
    default_message = "vault.json is missing from the Enclave home; restore it from a backup."


class VaultCorrupt(EnclaveError):
    code = "vault_corrupt"
    http_status = 500
    title = "Vault corrupt"
    default_message = "vault.json is damaged and cannot be read; restore it from a backup."


class KeyfileInvalid(EnclaveError):
    code = "keyfile_invalid"
    http_status = 500
    title = "Key file invalid"
    default_message = "The unseal key file is unreadable, has the wrong format or is not mode 0600."


class KeyfileRequired(EnclaveError):
    code = "keyfile_required"
    http_status = 422
    title = "Key file required"
    default_message = "This vault has a key-file slot: pass the key file so it can be re-wrapped."


# --- storage --------------------------------------------------------------------------------


class StorageError(EnclaveError):
    code = "storage_error"
    http_status = 500
    title = "Storage error"
    default_message = "Enclave could not read or write its data files."


class DiskFull(StorageError):
    code = "disk_full"
    http_status = 507
    title = "Disk full"
    default_message = "The disk holding the Enclave home is full; free space and retry."


class HomeUnwritable(StorageError):
    code = "home_unwritable"
    http_status = 500
    title = "Home not writable"
    default_message = (
        "The Enclave home directory cannot be written; check its path and permissions."
    )


class BlobNotFound(EnclaveError):
    code = "blob_not_found"
    http_status = 404
    title = "File not found"
    default_message = "The requested stored file does not exist."


class BlobCorrupt(StorageError):
    code = "blob_corrupt"
    http_status = 500
    title = "Stored file corrupt"
    default_message = "A stored file failed its integrity check (truncated, altered or wrong key)."


class DatabaseCorrupt(StorageError):
    code = "database_corrupt"
    http_status = 500
    title = "Database corrupt"
    default_message = "The database failed its integrity check; restore it from a backup."


class MigrationFailed(StorageError):
    code = "migration_failed"
    http_status = 500
    title = "Migration failed"
    default_message = "A database migration failed; the database was restored to its prior state."


class SchemaTooNew(StorageError):
    code = "schema_too_new"
    http_status = 409
    title = "Database is newer than this version"
    default_message = (
        "This home was written by a newer Enclave version; start that version (or a later one). "
        "Nothing was changed."
    )


class AuditChainBroken(StorageError):
    code = "audit_chain_broken"
    http_status = 500
    title = "Audit log tampered with"
    default_message = (
        "The audit log failed verification: an entry was altered, removed or reordered."
    )


class BackupInvalid(EnclaveError):
    code = "backup_invalid"
    http_status = 422
    title = "Backup invalid"
    default_message = "The backup file is damaged or not an Enclave backup; nothing was restored."


class ModelFileMissing(EnclaveError):
    code = "model_file_missing"
    http_status = 503
    title = "Model file missing"
    default_message = "The model file is not installed; reinstall the model package or import it."


class ModelFileInvalid(EnclaveError):
    code = "model_file_invalid"
    http_status = 422
    title = "Model file invalid"
    default_message = "The file is not a usable GGUF model."


class ModelHashMismatch(EnclaveError):
    code = "model_hash_mismatch"
    http_status = 409
    title = "Model hash mismatch"
    default_message = "The model file's sha256 does not match its catalog entry; it was refused."


class ModelUnknown(EnclaveError):
    code = "model_unknown"
    http_status = 422
    title = "Model unknown"
    default_message = (
        "The agent names a model that is neither in the catalog nor a configured endpoint."
    )


class ModelMemoryInsufficient(EnclaveError):
    code = "model_memory_insufficient"
    http_status = 503
    title = "Not enough memory for the model"
    default_message = (
        "There is not enough free memory to load the model; unload others or add memory."
    )


# --- request-level --------------------------------------------------------------------------


class InvalidRequest(EnclaveError):
    code = "invalid_request"
    http_status = 422
    title = "Invalid request"
    default_message = "The request is not valid."


class RateLimited(EnclaveError):
    code = "rate_limited"
    http_status = 429
    title = "Too many requests"
    default_message = "Too many requests; slow down and retry after the time given."


class NotFound(EnclaveError):
    code = "not_found"
    http_status = 404
    title = "Not found"
    default_message = "There is nothing at this address."


class ServerRejected(EnclaveError):
    code = "server_rejected"
    http_status = 502
    title = "Server rejected the request"
    default_message = "The running Enclave server rejected the request."


class Conflict(EnclaveError):
    code = "conflict"
    http_status = 409
    title = "Conflict"
    default_message = "This conflicts with something that already exists."


# --- identity -------------------------------------------------------------------------------


class InvalidCredentials(EnclaveError):
    code = "invalid_credentials"
    http_status = 401
    title = "Invalid credentials"
    # One message for every refusal, so an answer never tells whether an account exists.
    default_message = "The username or password is not correct, or the key is not valid."


class InvalidToken(EnclaveError):
    code = "invalid_token"
    http_status = 401
    title = "Invalid token"
    default_message = "The token is invalid, expired or revoked. Sign in again."


class Forbidden(EnclaveError):
    code = "forbidden"
    http_status = 403
    title = "Forbidden"
    default_message = "You are signed in but not allowed to do this."


class CsrfFailed(EnclaveError):
    code = "csrf_failed"
    http_status = 403
    title = "CSRF check failed"
    default_message = (
        "The request lacks a valid X-CSRF-Token header for this session; reload the page."
    )


class AuthenticationRequired(EnclaveError):
    code = "authentication_required"
    http_status = 401
    title = "Authentication required"
    default_message = "Sign in first: send `Authorization: Bearer <access token or API key>`."


class WeakPassword(EnclaveError):
    code = "weak_password"
    http_status = 422
    title = "Password too weak"
    default_message = "The password must be at least 12 characters long."


# --- agents ---------------------------------------------------------------------------------


class AgentInvalid(EnclaveError):
    """An agent definition (or import document) failed validation; ``context.field`` names
    the first offending field."""

    code = "agent_definition_invalid"
    http_status = 422
    title = "Agent definition invalid"
    default_message = "The agent definition is invalid."


class AgentArchived(EnclaveError):
    code = "agent_archived"
    http_status = 409
    title = "Agent archived"
    default_message = "This agent is archived: it can no longer be run or edited."


# --- sandbox --------------------------------------------------------------------------------


class SandboxUnavailable(EnclaveError):
    """No sandbox backend works (or the one asked for does not): code is refused, never run
    unsandboxed. ``enclave doctor`` says why each backend fails."""

    code = "sandbox_unavailable"
    http_status = 503
    title = "Sandbox unavailable"
    default_message = (
        "No sandbox backend works on this machine; code tools are disabled. "
        "Run `enclave doctor` to see why."
    )


class SandboxRequestInvalid(EnclaveError):
    """A sandbox limit or path is out of range (``sandbox_policy_invalid`` and the workspace
    path errors of the sandbox layer)."""

    code = "sandbox_request_invalid"
    http_status = 422
    title = "Sandbox request invalid"
    default_message = "The sandbox request is not valid."


class ToolNetworkInvalid(EnclaveError):
    """An agent's code-tool network allowlist has a bad entry (``context.entry`` names it);
    nothing was saved."""

    code = "tool_network_invalid"
    http_status = 422
    title = "Tool network allowlist invalid"
    default_message = "The code-tool network allowlist is not valid."


# --- model providers ------------------------------------------------------------------------


class ProviderEndpointInvalid(EnclaveError):
    """An endpoint's settings cannot work (URL scheme, timeouts, TLS files); nothing is saved."""

    code = "provider_endpoint_invalid"
    http_status = 422
    title = "Provider endpoint invalid"
    default_message = "The model endpoint's settings are not valid; nothing was saved."


class ProviderSecretUnreadable(EnclaveError):
    """A stored endpoint API key does not decrypt with the current data key."""

    code = "provider_secret_unreadable"
    http_status = 409
    title = "Provider secret unreadable"
    default_message = (
        "The endpoint's stored API key cannot be decrypted with the current data key; "
        "enter the key again."
    )


class McpServerUnreachable(EnclaveError):
    """An MCP server could not be started or reached, or did not list its tools."""

    code = "mcp_server_unreachable"
    http_status = 502
    title = "MCP server unreachable"
    default_message = "The MCP server could not be started or reached."
