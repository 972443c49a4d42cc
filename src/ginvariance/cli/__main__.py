"""``python -m ginvariance.cli``: the same as the ``ginv`` command."""

from ginvariance.cli import main

if __name__ == "__main__":
    main()
