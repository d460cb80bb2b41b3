"""Request and response bodies of the knowledge-base API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from appliance.knowledge.models import (
    KnowledgeBase,
    KnowledgeDocument,
    KnowledgeJob,
    KnowledgeSearch,
)
from engine.knowledge import SearchHit


class BaseCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    retention_days: int | None = Field(None, ge=1, le=36500)
    embedder: str | None = Field(None, max_length=64)


class BaseOut(BaseModel):
    id: str
    name: str
    description: str | None
    embedder: str
    pending_embedder: str | None
    retention_days: int | None
    created_at: datetime
    # Documents by status and chunks embedded of total (GET of one base only).
    progress: dict[str, object] | None = None

    @classmethod
    def of(cls, kb: KnowledgeBase) -> BaseOut:
        return cls(
            id=kb.id,
            name=kb.name,
            description=kb.description,
            embedder=kb.embedder,
            pending_embedder=kb.pending_embedder,
            retention_days=kb.retention_days,
            created_at=kb.created_at,
        )


class DocumentOut(BaseModel):
    id: str
    knowledge_base_id: str
    name: str
    filename: str
    size: int
    kind: str | None
    media_type: str | None
    tags: list[str]
    status: str
    error_code: str | None
    error_message: str | None
    chunk_count: int
    created_at: datetime

    @classmethod
    def of(cls, doc: KnowledgeDocument) -> DocumentOut:
        return cls(
            id=doc.id,
            knowledge_base_id=doc.kb_id,
            name=doc.name,
            filename=doc.filename,
            size=doc.size,
            kind=doc.kind,
            media_type=doc.media_type,
            tags=json.loads(doc.tags),
            status=doc.status,
            error_code=doc.error_code,
            error_message=doc.error_message,
            chunk_count=doc.chunk_count,
            created_at=doc.created_at,
        )


class JobOut(BaseModel):
    id: str
    kind: str
    knowledge_base_id: str
    document_id: str | None
    state: str
    stage: str
    done: int
    total: int
    progress: float
    cancel_requested: bool
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: KnowledgeJob) -> JobOut:
        finished = job.state == "done"
        progress = 1.0 if finished else (job.done / job.total if job.total else 0.0)
        if job.stage in ("queued", "checking", "parsing"):
            progress = 0.0
        return cls(
            id=job.id,
            kind=job.kind,
            knowledge_base_id=job.kb_id,
            document_id=job.document_id,
            state=job.state,
            stage=job.stage,
            done=job.done,
            total=job.total,
            progress=round(min(progress, 1.0), 4),
            cancel_requested=job.cancel_requested,
            error_code=job.error_code,
            error_message=job.error_message,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class UploadAccepted(BaseModel):
    job_id: str
    document_id: str
    status: str


class HitOut(BaseModel):
    document_id: str
    document_name: str
    filename: str
    knowledge_base_id: str
    chunk_id: str
    score: float
    text: str
    page: int | None
    section: str | None
    start: int
    end: int

    @classmethod
    def of(cls, hit: SearchHit) -> HitOut:
        return cls(
            document_id=hit.document_id,
            document_name=hit.document_name,
            filename=hit.filename,
            knowledge_base_id=hit.knowledge_base_id,
            chunk_id=hit.chunk_id,
            score=hit.score,
            text=hit.text,
            page=hit.page,
            section=hit.section,
            start=hit.start,
            end=hit.end,
        )


class SearchOut(BaseModel):
    query: str
    mode: str
    latency_ms: float
    hits: list[HitOut]


class ReembedBody(BaseModel):
    embedder: str = Field(min_length=1, max_length=64)


class GrantBody(BaseModel):
    user_id: int | None = None
    group_id: int | None = None
    level: Literal["use", "edit"] = "use"

    @model_validator(mode="after")
    def _one_grantee(self) -> GrantBody:
        if (self.user_id is None) == (self.group_id is None):
            raise ValueError("give exactly one of user_id or group_id")
        return self


class SearchLogOut(BaseModel):
    query: str
    mode: str
    latency_ms: float
    hit_count: int
    knowledge_base_ids: list[str]
    user_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: KnowledgeSearch) -> SearchLogOut:
        return cls(
            query=row.query,
            mode=row.mode,
            latency_ms=row.latency_ms,
            hit_count=row.hit_count,
            knowledge_base_ids=[k for k in row.kb_ids.split(",") if k],
            user_id=row.user_id,
            created_at=row.created_at,
        )
