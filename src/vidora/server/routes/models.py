"""`/v1/models`: the models (and aliases) this server offers, in OpenAI's list shape."""

from __future__ import annotations

from fastapi import APIRouter

from vidora.server.deps import CurrentKey, RegistryDep
from vidora.server.errors import NotFound
from vidora.server.protocol import ErrorResponse, ModelList, ModelObject
from vidora.server.registry import ModelSpec, Registry

router = APIRouter(
    prefix="/v1",
    tags=["models"],
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)


def _model(name: str, spec: ModelSpec, alias_of: str | None) -> ModelObject:
    return ModelObject(
        id=name,
        created=spec.created,
        owned_by=spec.owned_by,
        sizes=list(spec.sizes),
        seconds=[str(s) for s in spec.seconds],
        alias_of=alias_of,
    )


def _all(registry: Registry) -> list[ModelObject]:
    models = [_model(spec.id, spec, None) for spec in registry.models.values()]
    aliases = [
        _model(alias, registry.models[target], target) for alias, target in registry.aliases.items()
    ]
    return models + aliases


@router.get("/models")
def list_models(key: CurrentKey, registry: RegistryDep) -> ModelList:
    return ModelList(data=_all(registry))


@router.get("/models/{model}")
def retrieve_model(key: CurrentKey, model: str, registry: RegistryDep) -> ModelObject:
    for entry in _all(registry):
        if entry.id == model:
            return entry
    raise NotFound(
        f"The model '{model}' does not exist on this server.", param="model", code="model_not_found"
    )
