"""linattn.lab: measuring. Devices and size profiles, timing, memory (estimates, the guard, the peak
tracker), the roofline, FLOP and byte costs, the benchmark's contenders and command line, stored
results and the reports read from them.

Nothing here changes what attention computes; it only runs and measures the core (and linattn.fast).
"""
