"""Applications built on the toolkit: the domain-adaptation study and the Gradio app."""
