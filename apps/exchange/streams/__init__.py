"""The private streams: one authenticated WebSocket v2 connection per active account
(`executions`, `balances`), turned into exchange's records (issue 10 §6). See README.md."""
