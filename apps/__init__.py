"""Applications built on the toolkit: the domain-adaptation study and the Gradio app."""

from i2i_cli import check_packages, warn_if_installed_over

#: marks this project's package, not another distribution's of the same name (see i2i_cli.py)
__i2i__ = True

# a foreign package named translate or augment: one clear error before our imports fail obscurely
check_packages()
warn_if_installed_over(__name__, __file__)
