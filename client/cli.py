"""`pollen generate` and `pollen chat`: text through the swarm, printed as tokens arrive."""

from __future__ import annotations

import sys

import click


def _common(f):
    options = [
        click.option("--model", "model_path", required=True, type=click.Path(exists=True, file_okay=False),
                     help="checkpoint dir with the client parts and tokenizer"),
        click.option("--peers", required=True, help="comma-separated host:port list of block servers"),
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


def _load(model_path, peers, compress):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from client import AutoDistributedModelForCausalLM

    model = AutoDistributedModelForCausalLM.from_pretrained(model_path, initial_peers=peers.split(","),
                                                            compress=compress)
    if model.tokenizer is None:
        raise click.ClickException(f"{model_path} has no tokenizer.json")
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

    model = _load(model_path, peers, compress)
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

    model = _load(model_path, peers, compress)
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
