"""Evaluate reward models on benchmarks with each benchmark's official scoring.

    rmkit eval {rewardbench,rewardbench2,rmbench,judgebench,pairwise} --model M | --scorer length|random \
        [--data PATH] --output results.json [--report DIR]
    rmkit compare a.json b.json

Modules: rewardbench (v1), rewardbench2, rmbench, judgebench, pairwise (loaders + scoring),
metrics (pure maths and bootstrap), common (the shared results shape), diagnostics (length bias),
report (markdown / PNG / HTML), compare (paired tests), cli. Nothing here imports torch at module
level; a model is only loaded through rmkit.score when the CLI is given --model.
"""
