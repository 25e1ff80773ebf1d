"""``python -m cdas_openrlhf``: the same as ``cdas-openrlhf``."""

from cdas_openrlhf.launch import main

main()
