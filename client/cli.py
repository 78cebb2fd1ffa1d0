"""`pollen generate` and `pollen chat`: text through the swarm, printed as tokens arrive.

The model is what the user knows of it: `--model` a folder, a manifest CID (`--store` holds it)
or pollen://<network>/<version-id>; or `--network NAME --version ID` (servers from the registry,
deployments/NAME.json or `--deployment`). Privacy: `--allowed-servers` / `--blocked-servers`
("host:port" or 0x operator/signer, optionally WHO@START:END, comma-separated) and
`--local-blocks K` or `K_FIRST,K_LAST` (those blocks run in this process).
"""

from __future__ import annotations

import sys

import click


def _common(f):
    options = [
        click.option("--model", "model_path", default=None,
                     help="checkpoint dir, manifest CID (bafy..., ipfs://CID) or pollen://<network>/<version-id>"),
        click.option("--peers", default=None, help="comma-separated host:port list of block servers "
                     "(not with an on-chain version: the registry lists them)"),
        click.option("--network", default=None, help="network of an on-chain version (with --version)"),
        click.option("--version", "version_id", type=int, default=None, help="on-chain model version id"),
        click.option("--deployment", default=None, help="deployment file (default deployments/<network>.json)"),
        click.option("--rpc", default=None, help="JSON-RPC URL (default: the deployment's)"),
        click.option("--store", default=None, help="content store: a folder or a Kubo http URL (CID / on-chain)"),
        click.option("--cache-dir", default=None, help="where fetched client parts go (default .cache/client)"),
        click.option("--allowed-servers", default=None, help="only these servers: host:port / 0x address, "
                     "optionally WHO@START:END, comma-separated"),
        click.option("--blocked-servers", default=None, help="never these servers (same spelling)"),
        click.option("--local-blocks", default=None, help="run the first K (and last) blocks here: K (= K,K) or "
                     "K_FIRST,K_LAST; no server sees the token embeddings"),
        click.option("--push/--no-push", default=None, help="servers push hidden states to the next server "
                     "within a step (default: where all hops support it) / every hop relayed by the client"),
        click.option("--max-new-tokens", default=128, show_default=True),
        click.option("--temperature", default=1.0, show_default=True),
        click.option("--top-k", default=50, show_default=True, help="with --sample"),
        click.option("--top-p", default=1.0, show_default=True),
        click.option("--repetition-penalty", default=1.0, show_default=True),
        click.option("--sample/--greedy", default=False, show_default=True),
        click.option("--seed", default=0, show_default=True),
        click.option("--compress", is_flag=True, help="8-bit blockwise hidden states on the wire"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


LOAD_OPTIONS = ("network", "version_id", "deployment", "rpc", "store", "cache_dir", "allowed_servers",
                "blocked_servers", "local_blocks", "push")


def model_name(model_path, network, version_id) -> str:
    """--model, or pollen://NETWORK/VERSION from --network / --version."""
    if (network is None) != (version_id is None):
        raise click.UsageError("--network and --version go together")
    if network is not None:
        if model_path is not None:
            raise click.UsageError("give either --model or --network/--version, not both")
        return f"pollen://{network}/{version_id}"
    if model_path is None:
        raise click.UsageError("--model (folder, CID or pollen://...) or --network/--version is required")
    return model_path


def parse_local_blocks(text):
    """"K" -> K, "K_FIRST,K_LAST" -> (K_FIRST, K_LAST), None -> None."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"{text!r}: expected K or K_FIRST,K_LAST", param_hint="--local-blocks")
    ks = tuple(int(p) for p in parts)
    return ks[0] if len(ks) == 1 else ks


def _load(model_path, peers, compress, opts):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from client import AutoDistributedModelForCausalLM
    from pollen.errors import PollenError

    load = {k: opts.pop(k) for k in LOAD_OPTIONS}
    name = model_name(model_path, load.pop("network"), load.pop("version_id"))
    if peers is None and not name.startswith("pollen://"):
        raise click.UsageError("--peers is required unless the model is an on-chain version")
    try:
        model = AutoDistributedModelForCausalLM.from_pretrained(
            name, initial_peers=peers.split(",") if peers else None, compress=compress,
            local_blocks=parse_local_blocks(load.pop("local_blocks")), **load)
    except (PollenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if model.tokenizer is None:
        model.close()
        raise click.ClickException(f"{name} has no tokenizer.json")
    return model


class TextStreamer:
    """Prints the decoded text of new tokens as they arrive (handles multi-token characters)."""

    def __init__(self, tokenizer, out=sys.stdout):
        self.tokenizer, self.out, self.ids, self.printed, self.prompt_seen = tokenizer, out, [], "", False

    def put(self, tokens):  # transformers' streamer protocol: the prompt first, then (B,) per step
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.ids.append(int(tokens[0]))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            self.out.write(text[len(self.printed):])
            self.out.flush()
            self.printed = text

    def end(self):
        pass


def _gen_kwargs(opts):
    import torch

    return dict(max_new_tokens=opts["max_new_tokens"], do_sample=opts["sample"], temperature=opts["temperature"],
                top_k=opts["top_k"], top_p=opts["top_p"], repetition_penalty=opts["repetition_penalty"],
                generator=torch.Generator().manual_seed(opts["seed"]))


@click.command("generate")
@_common
@click.option("--prompt", required=True)
@click.option("--chat-template/--raw", default=False, help="wrap the prompt as one user turn")
@click.option("--stop", multiple=True, help="stop string (repeatable)")
def generate(model_path, peers, compress, prompt, chat_template, stop, **opts):
    """Generate a continuation of PROMPT through the swarm."""
    from client.errors import ClientError

    model = _load(model_path, peers, compress, opts)
    try:
        tok = model.tokenizer
        if chat_template:
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)["input_ids"]
        else:
            ids = tok(prompt, return_tensors="pt").input_ids
        model.generate(ids, streamer=TextStreamer(tok), stop_strings=list(stop) or None, **_gen_kwargs(opts))
        click.echo()
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        model.close()


@click.command("chat")
@_common
@click.option("--max-length", default=2048, show_default=True, help="tokens kept in the servers' caches")
@click.option("--system", default=None, help="optional system message")
def chat(model_path, peers, compress, max_length, system, **opts):
    """Interactive multi-turn chat using the model's chat template (empty line or Ctrl-D quits)."""
    from client.errors import ClientError

    model = _load(model_path, peers, compress, opts)
    tok = model.tokenizer
    messages = [{"role": "system", "content": system}] if system else []
    session, history = None, []
    try:
        while True:
            try:
                line = input("you> ")
            except EOFError:
                break
            if not line.strip():
                break
            messages.append({"role": "user", "content": line})
            full = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)["input_ids"]
            if session is None or full[0, :len(history)].tolist() != history or full.shape[1] + \
                    opts["max_new_tokens"] > max_length:
                if session is not None:
                    session.close()
                session, history = model.inference_session(max_length=max_length), []
                session.pending_ids = None
            new = full[:, len(history):]
            click.echo("bot> ", nl=False)
            streamer = TextStreamer(tok)
            out = model.generate(new, session=session, streamer=streamer, **_gen_kwargs(opts))
            click.echo()
            history = history + out[0].tolist()
            messages.append({"role": "assistant", "content": streamer.printed.strip()})
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if session is not None:
            session.close()
        model.close()
