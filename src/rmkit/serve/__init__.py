"""rmkit.serve: the HTTP reward server (FastAPI + uvicorn) with dynamic micro-batching.

    rmkit serve --model smollm2-135m              # then open http://127.0.0.1:8000/docs
    from rmkit.serve import ServeConfig, serve
    serve(build_scorer("smollm2-135m"), ServeConfig(port=8000))

Modules: app (create_app, serve), state (input → token ids under the limits), batcher (MicroBatcher),
guard (API key, body limit, request metrics), metrics (Prometheus text), schemas, config (ServeConfig),
cli (`rmkit serve`). `serve` and `create_app` import FastAPI when first used, so `import rmkit.serve` needs
none.
"""
from rmkit.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name):
    if name in ("serve", "create_app"):
        from rmkit.serve import app

        return getattr(app, name)
    raise AttributeError(name)
