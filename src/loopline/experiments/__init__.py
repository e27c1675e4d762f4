"""Experiments: new model versions reach users through A/B splits, bandits and canary ramps.

An experiment lives on the log (`loopline.experiments.records`,
`loopline.experiments.registry`); every ``loopline serve`` follows it and
assigns each request to an arm (`loopline.experiments.assignment`); the
watcher (`loopline.experiments.watcher`, ``loopline experiments run``) learns
from the outcomes and acts: bandit weights, guardrails and rollback, canary
steps, conclusion.
"""
