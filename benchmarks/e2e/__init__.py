"""The end-to-end surge benchmark (`python -m benchmarks e2e`), split by concern: settings, the history
loader, the stack of service processes, the surge and its watchers, the report."""
