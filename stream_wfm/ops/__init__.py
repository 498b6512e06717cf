"""Operations: metrics, health and readiness, structured logging."""
