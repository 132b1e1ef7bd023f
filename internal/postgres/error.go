package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// SQLSTATE codes the store maps to application errors.
const (
	codeForeignKeyViolation  = "23503"
	codeUniqueViolation      = "23505"
	codeCheckViolation       = "23514"
	codeTooManyConnections   = "53300"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	codeUndefinedTable       = "42P01"
	codeLockNotAvailable     = "55P03"
	classConnectionException = "08"
	// classDataException is what PostgreSQL refuses for a value's content:
	// invalid input for a type (a lone surrogate escape in JSON, 22P02), a
	// number out of range (22003), NUL or invalid UTF-8 in text (22021,
	// 22P05), and the like.
	classDataException = "22"
)

// sqlState returns the SQLSTATE of a server error in err's chain, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// wrap turns err, returned by the database while doing op, into the error a
// Store method returns; nil stays nil.
//
// An unreachable database becomes EUNAVAILABLE. The cause is wrapped along
// with the *iotflow.Error (fmt.Errorf with two %w verbs) so that errors.As
// finds the application error while the logged message still says what
// failed. When ctx itself is done the caller gave up, so the error stays a
// context error rather than blaming the database.
func wrap(ctx context.Context, op string, err error) error {
	var appErr *iotflow.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &appErr):
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return iotflow.Errorf(iotflow.ENOTFOUND, "Not found", "The requested entity does not exist.")
	}
	switch code := sqlState(err); {
	case strings.HasPrefix(code, classDataException):
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		msg := pgErr.Message
		if pgErr.Detail != "" {
			msg += ": " + pgErr.Detail
		}
		return iotflow.Errorf(iotflow.EINVALID, "Validation error", "The database cannot store a value of the request (%s)", msg)
	case code == codeUniqueViolation:
		return iotflow.Errorf(iotflow.ECONFLICT, "Conflict", "A unique value is already taken.")
	case code == codeForeignKeyViolation:
		return iotflow.Errorf(iotflow.ENOTFOUND, "Not found", "A referenced entity does not exist.")
	case code == codeCheckViolation:
		return iotflow.Errorf(iotflow.EINVALID, "Validation error", "A value is out of range.")
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("%s: %w", op, err)
		}
		return fmt.Errorf("%s: %w: %w", op, ctxErr, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %s: %w", iotflow.Errorf(iotflow.EUNAVAILABLE, "Service unavailable",
			"The database is unavailable; try again later."), op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailable reports whether err means the database cannot be reached or is
// going away, as opposed to a fault in a statement.
func unavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.SafeToRetry(err),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	switch code := sqlState(err); code {
	case codeTooManyConnections, codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow:
		return true
	default:
		return strings.HasPrefix(code, classConnectionException)
	}
}
