"""The job lifecycle below both products: the output folder and its lock, resume, the
summary model and its one writer, the result, interrupts, the catalog at the end."""
