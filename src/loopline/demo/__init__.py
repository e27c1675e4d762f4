"""The simulated business behind ``loopline demo``: the whole loop in one command."""
