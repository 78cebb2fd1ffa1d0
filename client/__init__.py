"""Pollen client: HF-like distributed causal LM over a swarm of block servers."""

from client.errors import (ClientError, MissingBlocksError, ReceiptRejected, RequestRejected,
                           ServerFailure)
from client.model import AutoDistributedModelForCausalLM, DistributedModelForCausalLM
from client.session import InferenceSession

__all__ = ["AutoDistributedModelForCausalLM", "ClientError", "DistributedModelForCausalLM",
           "InferenceSession", "MissingBlocksError", "ReceiptRejected", "RequestRejected",
           "ServerFailure"]
