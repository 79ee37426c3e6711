"""The image-translation web app behind ``i2i app``.

``catalogue`` finds exported generators and their cards, ``imaging`` decodes uploads under the
limits, ``service`` runs one translation, ``ui`` is the Gradio page and ``server`` launches it.
``style_data``, ``bundle`` and ``grids`` rebuild the bundled models' data, package data and
documentation figures. Gradio is imported only by ``ui`` (through ``server``).
"""
