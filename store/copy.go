package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TableCount is one table's row count in a copy.
type TableCount struct {
	Table string
	Rows  int64
}

// CopyReport is what CopyToPostgres copied.
type CopyReport struct {
	Tables []TableCount
	// LastSeq is the highest event seq ever assigned, carried over so a
	// sequence number is never reused on the new database.
	LastSeq int64
}

// ErrTargetNotEmpty is returned when the PostgreSQL database already holds
// a server's data.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// seededTables are filled by the migrations themselves (one row each):
// they do not make a database "not empty", and their row is replaced by
// the source's.
var seededTables = map[string]bool{"event_head": true, "feed_retention": true}

// pgOnlyTables exist on PostgreSQL only (SQLite keeps the same fact in
// sqlite_sequence): the copy sets them itself.
var pgOnlyTables = map[string]bool{"event_head": true}

// CopyToPostgres copies every table of this store (a SQLite one; the
// server must be stopped) into the PostgreSQL database at url, which it
// migrates first and which must hold no data: in one PostgreSQL
// transaction, from one consistent SQLite snapshot. It then moves every
// identity sequence past the copied ids (the event seq past the highest
// ever assigned, deleted events included), checks each table's row count
// against the source's, and commits. Nothing is written when any step
// fails.
func (s *Store) CopyToPostgres(ctx context.Context, url string, log *slog.Logger) (CopyReport, error) {
	var rep CopyReport
	if s.eng.name() != "sqlite" {
		return rep, errors.New("copy: the source must be a SQLite store")
	}
	if !IsPostgres(url) {
		return rep, errors.New("copy: the target must be a postgres:// URL")
	}
	if log == nil {
		log = slog.Default()
	}
	pe := &postgresEngine{url: url, log: log}
	if err := pe.migrate(ctx); err != nil {
		return rep, fmt.Errorf("migrate the target: %w", err)
	}
	btx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rep, fmt.Errorf("read the source: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	src := btx.Tx
	var lastSeq sql.NullInt64
	if err := src.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'events'`).Scan(&lastSeq); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return rep, fmt.Errorf("read the source's last seq: %w", err)
	}
	srcTables, err := sqliteTables(ctx, src)
	if err != nil {
		return rep, err
	}

	cfg, err := pe.config(false)
	if err != nil {
		return rep, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return rep, fmt.Errorf("connect to the target: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return rep, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	// No instance may write while the copy runs (a server started on the
	// target by mistake waits at its first batch).
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, batchLockKey); err != nil {
		return rep, fmt.Errorf("take the batch lock: %w", err)
	}
	order, cols, err := postgresTables(ctx, tx)
	if err != nil {
		return rep, err
	}
	if err := sameTables(srcTables, order); err != nil {
		return rep, err
	}
	if err := targetEmpty(ctx, tx, order); err != nil {
		return rep, err
	}
	// The members-version trigger would count every copied membership
	// again on top of the copied version: off for this transaction only.
	if _, err := tx.Exec(ctx, `ALTER TABLE group_members DISABLE TRIGGER USER`); err != nil {
		return rep, fmt.Errorf("pause triggers: %w", err)
	}
	for _, table := range order {
		if pgOnlyTables[table] {
			continue
		}
		n, err := copyTable(ctx, src, tx, table, cols[table], srcTables[table])
		if err != nil {
			return rep, err
		}
		rep.Tables = append(rep.Tables, TableCount{Table: table, Rows: n})
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE group_members ENABLE TRIGGER USER`); err != nil {
		return rep, fmt.Errorf("resume triggers: %w", err)
	}
	if err := resetSequences(ctx, tx, lastSeq.Int64); err != nil {
		return rep, err
	}
	rep.LastSeq = lastSeq.Int64
	for _, tc := range rep.Tables {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tc.Table}.Sanitize()).Scan(&n); err != nil {
			return rep, fmt.Errorf("count %s on the target: %w", tc.Table, err)
		}
		if n != tc.Rows {
			return rep, fmt.Errorf("copy: %s has %d rows on the target, %d in the source", tc.Table, n, tc.Rows)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return rep, fmt.Errorf("commit the copy: %w", err)
	}
	return rep, nil
}

// sqliteTables maps each data table of the source to its columns.
func sqliteTables(ctx context.Context, src *sql.Tx) (map[string][]string, error) {
	rows, err := src.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE 'bun\_%' ESCAPE '\'`)
	if err != nil {
		return nil, fmt.Errorf("list the source's tables: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, n := range names {
		crs, err := src.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, n)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", n, err)
		}
		for crs.Next() {
			var c string
			if err := crs.Scan(&c); err != nil {
				crs.Close()
				return nil, err
			}
			out[n] = append(out[n], c)
		}
		crs.Close()
	}
	return out, nil
}

// pgColumn is a target column and its type.
type pgColumn struct{ name, typ string }

// postgresTables lists the target's data tables in an order where every
// table comes after the tables its foreign keys reference, with columns.
func postgresTables(ctx context.Context, tx pgx.Tx) ([]string, map[string][]pgColumn, error) {
	cols := map[string][]pgColumn{}
	rows, err := tx.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name NOT LIKE 'bun\_%' ORDER BY table_name, ordinal_position`)
	if err != nil {
		return nil, nil, fmt.Errorf("list the target's columns: %w", err)
	}
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			rows.Close()
			return nil, nil, err
		}
		cols[t] = append(cols[t], pgColumn{c, typ})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	deps := map[string][]string{}
	rows, err = tx.Query(ctx, `SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, nil, fmt.Errorf("list the target's foreign keys: %w", err)
	}
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if from != to {
			deps[from] = append(deps[from], to)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(cols))
	for t := range cols {
		names = append(names, t)
	}
	sort.Strings(names)
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(t string) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("copy: foreign keys form a cycle through %s", t)
		case 2:
			return nil
		}
		state[t] = 1
		for _, d := range deps[t] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[t] = 2
		order = append(order, t)
		return nil
	}
	for _, t := range names {
		if err := visit(t); err != nil {
			return nil, nil, err
		}
	}
	return order, cols, nil
}

// sameTables checks that source and target have the same data tables
// (both migrated to the same version).
func sameTables(src map[string][]string, target []string) error {
	var missing, extra []string
	for _, t := range target {
		if _, ok := src[t]; !ok && !pgOnlyTables[t] {
			missing = append(missing, t)
		}
	}
	for t := range src {
		if !slices.Contains(target, t) {
			extra = append(extra, t)
		}
	}
	if len(missing)+len(extra) > 0 {
		sort.Strings(missing)
		sort.Strings(extra)
		return fmt.Errorf("copy: the schemas differ (tables only on PostgreSQL: %v; only in SQLite: %v): run the same sovereign version on both", missing, extra)
	}
	return nil
}

// targetEmpty refuses a target that holds any row beyond what the
// migrations seed.
func targetEmpty(ctx context.Context, tx pgx.Tx, tables []string) error {
	for _, t := range tables {
		if seededTables[t] {
			continue
		}
		var any bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{t}.Sanitize()+`)`).Scan(&any); err != nil {
			return fmt.Errorf("check %s on the target: %w", t, err)
		}
		if any {
			return fmt.Errorf("%w (table %s has rows): copy into a new, empty database", ErrTargetNotEmpty, t)
		}
	}
	var head int64
	if err := tx.QueryRow(ctx, `SELECT seq FROM event_head WHERE id = 1`).Scan(&head); err != nil {
		return fmt.Errorf("check event_head on the target: %w", err)
	}
	if head != 0 {
		return fmt.Errorf("%w (events were stored once): copy into a new, empty database", ErrTargetNotEmpty)
	}
	return nil
}

// copyTable streams one table with COPY, converting SQLite's values to the
// target column types.
func copyTable(ctx context.Context, src *sql.Tx, tx pgx.Tx, table string, cols []pgColumn, srcCols []string) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
		if !slices.Contains(srcCols, c.name) {
			return 0, fmt.Errorf("copy: column %s.%s exists on PostgreSQL only: run the same sovereign version on both", table, c.name)
		}
	}
	if len(srcCols) != len(cols) {
		return 0, fmt.Errorf("copy: table %s has %d columns in SQLite, %d on PostgreSQL", table, len(srcCols), len(cols))
	}
	if seededTables[table] {
		if _, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()); err != nil {
			return 0, fmt.Errorf("clear %s: %w", table, err)
		}
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + n + `"`
	}
	// rowid order: parents before children within a table.
	rows, err := src.QueryContext(ctx, `SELECT `+strings.Join(quoted, ", ")+` FROM "`+table+`" ORDER BY rowid`)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, names, pgx.CopyFromFunc(func() ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out := make([]any, len(cols))
		for i, c := range cols {
			v, err := convert(vals[i], c.typ)
			if err != nil {
				return nil, fmt.Errorf("copy: %s.%s: %w", table, c.name, err)
			}
			out[i] = v
		}
		return out, nil
	}))
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", table, err)
	}
	return n, nil
}

// convert turns a value read from SQLite into one for a PostgreSQL column
// of type typ (information_schema data_type).
func convert(v any, typ string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case string:
			return strconv.ParseInt(x, 10, 64)
		case []byte:
			return strconv.ParseInt(string(x), 10, 64)
		case float64:
			return int64(x), nil
		}
	case "boolean":
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		}
	case "bytea":
		switch x := v.(type) {
		case []byte:
			// Never nil: the driver reads a zero-length BLOB (a welcome
			// event's payload, whose bytes live in welcomes) as a nil
			// slice, which pgx would send as NULL.
			return append([]byte{}, x...), nil
		case string:
			return []byte(x), nil
		}
	case "text", "character varying":
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		}
	case "double precision", "real":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
	}
	return nil, fmt.Errorf("cannot store a %T in a %s column", v, typ)
}

// resetSequences moves every identity sequence past the copied ids, the
// events' past lastSeq, and sets the event head.
func resetSequences(ctx context.Context, tx pgx.Tx, lastSeq int64) error {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND is_identity = 'YES'`)
	if err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	type idCol struct{ table, col string }
	var ids []idCol
	for rows.Next() {
		var c idCol
		if err := rows.Scan(&c.table, &c.col); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range ids {
		var top sql.NullInt64
		t, col := pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.col}.Sanitize()
		if err := tx.QueryRow(ctx, `SELECT max(`+col+`) FROM `+t).Scan(&top); err != nil {
			return fmt.Errorf("max %s.%s: %w", c.table, c.col, err)
		}
		next := top.Int64
		if c.table == "events" {
			next = max(next, lastSeq)
		}
		if next > 0 {
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), $3)`, c.table, c.col, next); err != nil {
				return fmt.Errorf("move the sequence of %s.%s: %w", c.table, c.col, err)
			}
		}
	}
	var top sql.NullInt64
	if err := tx.QueryRow(ctx, `SELECT max(seq) FROM events`).Scan(&top); err != nil {
		return fmt.Errorf("max event seq: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE event_head SET seq = $1 WHERE id = 1`, max(top.Int64, lastSeq)); err != nil {
		return fmt.Errorf("set the event head: %w", err)
	}
	return nil
}
