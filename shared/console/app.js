// The console: filled in by the console UI commit.
