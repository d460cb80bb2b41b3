"""/api/v1/knowledge-bases, /api/v1/jobs and /api/v1/knowledge (admin analytics).

Roles gate the routes (the authorization matrix); the ACL gates each base: a base one may not
use answers 404, as if it did not exist. Uploads stream into the encrypted blob store.
"""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool as call

from appliance.identity.models import Role
from appliance.knowledge import KnowledgeRuntime, SearchFilters, knowledge_runtime
from appliance.knowledge.sharing import share_base, unshare_base
from appliance.licensing.features import KNOWLEDGE
from appliance.web.auth import Admin, Principal, authorize
from appliance.web.entitlements import entitled
from appliance.web.knowledge_schemas import (
    BaseCreate,
    BaseOut,
    DocumentOut,
    GrantBody,
    HitOut,
    JobOut,
    ReembedBody,
    SearchLogOut,
    SearchOut,
    UploadAccepted,
)
from appliance.web.multipart_stream import StreamedFilePart, boundary_of

# Without the `knowledge` entitlement (a downgrade) every change is refused; reads go on.
_ENTITLED = [Depends(entitled(KNOWLEDGE))]
bases = APIRouter(prefix="/api/v1/knowledge-bases", tags=["knowledge"], dependencies=_ENTITLED)
jobs = APIRouter(prefix="/api/v1/jobs", tags=["knowledge"], dependencies=_ENTITLED)
admin = APIRouter(prefix="/api/v1/knowledge", tags=["knowledge"], dependencies=_ENTITLED)

# Auditors read the audit log, never content.
USERS = (Role.ADMIN, Role.BUILDER, Role.MEMBER)
Reader = Annotated[Principal, Depends(authorize(USERS, "knowledge:read"))]
Writer = Annotated[Principal, Depends(authorize(USERS, "knowledge:write"))]
Creator = Annotated[Principal, Depends(authorize((Role.ADMIN, Role.BUILDER), "knowledge:write"))]


def get_runtime(request: Request) -> KnowledgeRuntime:
    """The knowledge runtime of the unsealed appliance (built on first use)."""
    return knowledge_runtime(request.app.state.appliance)


Runtime = Annotated[KnowledgeRuntime, Depends(get_runtime)]


@bases.post("", status_code=201)
async def create_base(body: BaseCreate, principal: Creator, rt: Runtime) -> BaseOut:
    """A new knowledge base owned by the caller."""
    kb = await call(
        rt.service.create_base,
        principal.user,
        body.name,
        body.description,
        body.retention_days,
        body.embedder,
    )
    return BaseOut.of(kb)


@bases.get("")
async def list_bases(principal: Reader, rt: Runtime) -> list[BaseOut]:
    """The bases the caller may use."""
    return [BaseOut.of(kb) for kb in await call(rt.service.list_bases, principal.user)]


@bases.get("/{kb_id}")
async def get_base(kb_id: str, principal: Reader, rt: Runtime) -> BaseOut:
    """One base with its progress (404 when it does not exist or the caller may not use it)."""
    out = BaseOut.of(await call(rt.service.get_base, principal.user, kb_id))
    out.progress = await call(rt.service.progress, principal.user, kb_id)
    return out


@bases.delete("/{kb_id}", status_code=204)
async def delete_base(kb_id: str, principal: Writer, rt: Runtime) -> Response:
    """Delete the base and everything in it (documents, chunks, vectors, blobs)."""
    await call(rt.service.delete_base, principal.user, kb_id)
    return Response(status_code=204)


@bases.post("/{kb_id}/grants", status_code=204)
async def grant(kb_id: str, body: GrantBody, principal: Writer, rt: Runtime) -> Response:
    """Share the base with a user or group at ``use`` or ``edit`` (needs ``edit``; audited)."""
    await call(
        lambda: share_base(
            rt.service,
            principal.user,
            kb_id,
            body.level,
            user_id=body.user_id,
            group_id=body.group_id,
        )
    )
    return Response(status_code=204)


@bases.delete("/{kb_id}/grants", status_code=204)
async def revoke(
    kb_id: str,
    principal: Writer,
    rt: Runtime,
    user_id: int | None = Query(None, description="Revoke this user's grant."),
    group_id: int | None = Query(None, description="Revoke this group's grant."),
) -> Response:
    """Revoke the grant to ``?user_id=`` or ``?group_id=`` (needs ``edit``; audited). The
    grantee's next search of the base is a 404. Revoking a grant that does not exist is 204."""
    await call(
        lambda: unshare_base(rt.service, principal.user, kb_id, user_id=user_id, group_id=group_id)
    )
    return Response(status_code=204)


@bases.post("/{kb_id}/documents", status_code=202)
async def upload(
    kb_id: str,
    request: Request,
    principal: Writer,
    rt: Runtime,
    tags: str | None = Query(None, max_length=1000, description="Comma-separated tags."),
) -> UploadAccepted:
    """Upload one file (multipart field ``file``), streamed into encrypted storage in constant
    memory; 202 with the ingestion job. Bad files fail the job with a specific code."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    await call(rt.service.get_base, principal.user, kb_id, "edit")
    stream = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    def pull() -> bytes | None:
        return anyio.from_thread.run(next_chunk)

    def receive() -> UploadAccepted:
        part = StreamedFilePart(boundary, pull)
        filename = part.open()
        tag_list = [t.strip() for t in (tags or "").split(",") if t.strip()]
        doc, job = rt.service.add_document(principal.user, kb_id, filename, part.chunks(), tag_list)
        return UploadAccepted(job_id=job.id, document_id=doc.id, status=doc.status)

    return await anyio.to_thread.run_sync(receive)


@bases.get("/{kb_id}/documents")
async def list_documents(kb_id: str, principal: Reader, rt: Runtime) -> list[DocumentOut]:
    """The base's documents with their status, newest first."""
    docs = await call(rt.service.list_documents, principal.user, kb_id)
    return [DocumentOut.of(d) for d in docs]


@bases.get("/{kb_id}/documents/{doc_id}")
async def get_document(kb_id: str, doc_id: str, principal: Reader, rt: Runtime) -> DocumentOut:
    """One document's status (``queued``, ``processing``, ``indexed``, ``ready``, ``failed``,
    ``quarantined``) and error."""
    return DocumentOut.of(await call(rt.service.get_document, principal.user, kb_id, doc_id))


@bases.delete("/{kb_id}/documents/{doc_id}", status_code=204)
async def delete_document(kb_id: str, doc_id: str, principal: Writer, rt: Runtime) -> Response:
    """Delete the document: blob, chunks, FTS rows and vectors."""
    await call(rt.service.delete_document, principal.user, kb_id, doc_id)
    return Response(status_code=204)


@bases.get("/{kb_id}/search")
async def search(
    kb_id: str,
    principal: Reader,
    rt: Runtime,
    q: str = Query(..., min_length=1, max_length=2000),
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid",
    k: int = Query(10, ge=1, le=100),
    document_id: list[str] = Query(default_factory=list),
    tag: list[str] = Query(default_factory=list),
) -> SearchOut:
    """Ranked passages with citations (document, page, section, character span)."""
    filters = SearchFilters(tuple(document_id), tuple(tag))
    result = await call(
        lambda: rt.searcher.search(
            principal.user, q, kb_ids=[kb_id], mode=mode, k=k, filters=filters
        )
    )
    return SearchOut(
        query=q,
        mode=result.mode,
        latency_ms=round(result.latency_ms, 3),
        hits=[HitOut.of(h) for h in result.hits],
    )


@bases.post("/{kb_id}/reembed", status_code=202)
async def reembed(kb_id: str, body: ReembedBody, principal: Writer, rt: Runtime) -> JobOut:
    """Re-embed every chunk with another embedder, in the background."""
    job = await call(rt.service.start_reembed, principal.user, kb_id, body.embedder)
    return JobOut.of(job)


@jobs.get("/{job_id}")
async def get_job(job_id: str, principal: Reader, rt: Runtime) -> JobOut:
    """A knowledge job's state, stage and progress."""
    return JobOut.of(await call(rt.service.get_job, principal.user, job_id))


@jobs.post("/{job_id}/cancel")
async def cancel_job(job_id: str, principal: Writer, rt: Runtime) -> JobOut:
    """Cancel an ingestion (its document is removed)."""
    return JobOut.of(await call(rt.service.cancel_job, principal.user, job_id))


@admin.get("/searches/slowest")
async def slowest(
    _: Admin, rt: Runtime, limit: int = Query(20, ge=1, le=500)
) -> list[SearchLogOut]:
    """The slowest searches (analytics)."""
    return [SearchLogOut.of(r) for r in await call(rt.searcher.slowest, limit)]


@admin.get("/searches/zero-hits")
async def zero_hits(
    _: Admin, rt: Runtime, limit: int = Query(20, ge=1, le=500)
) -> list[SearchLogOut]:
    """The latest searches that found nothing (analytics)."""
    return [SearchLogOut.of(r) for r in await call(rt.searcher.zero_hits, limit)]


@admin.post("/purge")
async def purge(_: Admin, rt: Runtime) -> dict[str, int]:
    """Apply every base's retention now; returns how many documents were removed."""
    return {"removed": await call(rt.service.purge_expired)}


@admin.get("/orphans")
async def orphans(_: Admin, rt: Runtime) -> dict[str, object]:
    """Chunks, FTS rows, vectors and blobs that belong to nothing (all empty when healthy)."""
    report = await call(rt.service.find_orphans)
    return {"clean": report.clean, **vars(report)}


routers = (bases, jobs, admin)
