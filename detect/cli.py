"""Command-line pieces shared by demo.py and deploy.py."""
import argparse

BOOL = argparse.BooleanOptionalAction


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except 'None', whose meaning the help text itself explains."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)
