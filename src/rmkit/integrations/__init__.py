"""rmkit's reward model inside RL loops: TRL (GRPO and every trainer taking `reward_funcs`), verl and
OpenRLHF, with the prompt run once for all of its completions.

    from rmkit.integrations.trl import reward_function
    reward = reward_function("path/to/rm")                            # local: an rmkit scorer
    reward = reward_function("http://127.0.0.1:8000", api_key="...")  # remote: `rmkit serve`
    GRPOTrainer(model=policy, reward_funcs=reward, ...)

    # verl: custom_reward_function.path=<rmkit>/integrations/verl.py, name=compute_score (or
    # compute_score_batch with reward_model.reward_manager=batch), reward_kwargs: {model: ...} or {url: ...}
    # OpenRLHF: --remote_rm_url http://host:8000/get_reward  (rmkit serve answers its payload)

`rewards` holds what all adapters share: samples to raw rewards (locally or over HTTP), per-sample
failures reported, never a silent 0, and the optional normalisation by a stored mean / std.
"""
