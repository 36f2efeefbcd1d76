"""The static leaderboard website (`rb site`)."""
