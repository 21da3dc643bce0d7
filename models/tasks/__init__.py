"""One module per task (``Task`` subclasses registered with ``models.base.register_task``)."""
