"""Petals' quickstart, as a Petals user writes it; only the import line names Pollen.

    python examples/petals_quickstart.py MODEL_DIR_OR_CID HOST:PORT[,HOST:PORT...]

With Petals the import line reads `from petals import AutoDistributedModelForCausalLM`; nothing
else changes (the README shows the diff, tests/python/swarm/test_petals_example.py runs it).
"""

import sys

import torch
from transformers import AutoTokenizer

from client import AutoDistributedModelForCausalLM

model_name, INITIAL_PEERS = sys.argv[1], sys.argv[2].split(",")

tokenizer = AutoTokenizer.from_pretrained(model_name)
model = AutoDistributedModelForCausalLM.from_pretrained(model_name, initial_peers=INITIAL_PEERS)

# one call
inputs = tokenizer("A cat sat on", return_tensors="pt")["input_ids"]
outputs = model.generate(inputs, max_new_tokens=6)
print("one call:", repr(tokenizer.decode(outputs[0, inputs.shape[1]:])))

# a session kept open on the servers, one token per call (Petals' chat-bot loop)
with model.inference_session(max_length=64) as sess:
    prefix, pieces = inputs, []
    for _ in range(6):
        outputs = model.generate(prefix, max_new_tokens=1, session=sess)
        pieces.append(outputs[0, -1].item())
        prefix = None  # the prompt goes with the first call only
    print("in a session:", repr(tokenizer.decode(pieces)))

# the whole forward pass, with gradients (fine-tuning style)
with torch.no_grad():
    logits = model(inputs).logits
print("logits:", tuple(logits.shape))
