"""Credits: the price table, the hash-chained ledger, reserve → settle → release, budgets,
notifications and analytics. :mod:`appliance.credits.metering` wires them together;
:class:`appliance.credits.hooks.CreditsHook` is the engine hook."""
