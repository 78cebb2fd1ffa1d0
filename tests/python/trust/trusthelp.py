"""Helpers for tests/python/trust: a trust stack on a tiny random Llama, client sessions."""

from __future__ import annotations

import torch

from pollen.deploy import Parameters

# Judgment v2 on this tiny random Llama (hidden 64, 6 blocks), per block per token on sketches:
# honest bf16 vs fp32 0.17, fp32 KV cache vs replay 4e-6; skipping any one block 0.85..1.7.
# Tolerance 0.4: 2.3x over the honest bf16 spread, 2.1x under the mildest skip. (SmolLM2's
# calibrated table and default are in benchmarks/results/judgment.md.)
TOLERANCE = 0.4
# The cheater skips block 3 of its span on every step, still signing sketches of what it ran.
FAULT = ["--fault", "skip:3", "--fault-rate", "1.0"]
PARAMS = Parameters(draw_delay_blocks=1)


def tiny_stack(tmp_path_factory, name: str, seed: int):
    """anvil + contracts + a tiny random Llama published and registered (no daemons yet)."""
    from devstack.procs import start_stack
    from pollen.model.tiny import make_checkpoint

    work = tmp_path_factory.mktemp(name)
    return start_stack(work, make_checkpoint("llama", work / "tiny", seed=seed), PARAMS, TOLERANCE)


def session_via(model, n_new: int = 5, seed: int = 0):
    """Generate n_new tokens greedily in a recorded session; returns (session, ids)."""
    ids = torch.randint(0, int(model.config.vocab_size), (1, 6), generator=torch.Generator().manual_seed(seed))
    session = model.inference_session(max_length=ids.shape[1] + n_new)
    out = model.generate(ids, max_new_tokens=n_new, session=session)
    session.close()
    return session, out


def open_client(stack, key_index: int, allow=(), deny=()):
    from client.onchain import open_model
    from pollen.store import LocalStore

    chain = stack.chain(key_index)
    store = LocalStore(stack.store_path)
    model, members = open_model(chain, stack.version_id, store, str(stack.workdir / f"client{key_index}"),
                                allow=allow, deny=deny)
    return chain, store, model, members
