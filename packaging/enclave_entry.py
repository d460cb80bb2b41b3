"""Entry point of the frozen bundle (PyInstaller): the ``enclave`` command.

``freeze_support`` first: the local model runs in a ``spawn`` worker process, which in a frozen
program is the bundle's own executable started again with multiprocessing's arguments.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from appliance.cli import main

    main()
