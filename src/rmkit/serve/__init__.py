"""rmkit.serve: the HTTP reward server (FastAPI + uvicorn) with dynamic micro-batching.

    rmkit serve --model smollm2-135m              # then open http://127.0.0.1:8000/docs

Modules: app (create_app, serve), state (input → token ids under the limits), batcher (MicroBatcher),
guard (API key, body limit, request metrics), metrics (Prometheus text), schemas, config (ServeConfig),
cli (`rmkit serve`). Nothing is imported here, so `import rmkit.serve` needs no FastAPI.
"""
