"""linattn.learn: Chapter 7's small transformer, its synthetic tasks, training and experiments."""
