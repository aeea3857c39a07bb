"""The OpenAI-compatible Videos API server: app, durable job queue, workers, keys, webhooks.

Layers, outermost first: routes (thin, one per endpoint) -> services (VideoService,
KeyStore, Limiter; raise APIError) -> the job queue and storage (database rows and files)
-> workers running an Engine. Nothing here imports torch until a worker loads a model.
"""
