// Package aztable implements store.Tables and store.Table on Azure Table
// Storage (and Azurite) with the aztables SDK. SDK errors are translated to
// switchboard error codes here, where they arise.
package aztable

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Options says how to reach the storage account: a connection string
// (Azurite, or an account key), or an endpoint with a token credential
// (managed identity in Azure).
type Options struct {
	ConnectionString string
	Endpoint         string
	Credential       azcore.TokenCredential
	// HTTPClient overrides the transport (tests); nil uses a pooled client.
	HTTPClient *http.Client
}

// Tables is a storage account's table service.
type Tables struct {
	svc *aztables.ServiceClient

	mu      sync.Mutex
	created map[string]*Table
}

var _ store.Tables = (*Tables)(nil)

// Open returns the table service described by opts. It does not contact the
// service: Ping does.
func Open(opts Options) (*Tables, error) {
	const op = "aztable.Open"
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	co := &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: client,
		Retry:     policy.RetryOptions{MaxRetries: 3, TryTimeout: 15 * time.Second, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 3 * time.Second},
	}}
	var svc *aztables.ServiceClient
	var err error
	switch {
	case opts.ConnectionString != "":
		if strings.Contains(strings.ToLower(opts.ConnectionString), "usedevelopmentstorage=true") {
			return nil, switchboard.Errorf(switchboard.EINVALID, op, "UseDevelopmentStorage=true is not supported: give Azurite's explicit "+
				"connection string (AccountName=devstoreaccount1;...;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1)")
		}
		if endpoint, sas, ok := sasConnectionString(opts.ConnectionString); ok {
			// The SDK ignores TableEndpoint in a SAS connection string and
			// always calls <account>.table.core.windows.net.
			svc, err = aztables.NewServiceClientWithNoCredential(endpoint+"?"+sas, co)
		} else {
			svc, err = aztables.NewServiceClientFromConnectionString(opts.ConnectionString, co)
		}
	case opts.Endpoint != "":
		if opts.Credential == nil {
			return nil, switchboard.Errorf(switchboard.EINVALID, op, "a table endpoint needs a credential")
		}
		svc, err = aztables.NewServiceClient(opts.Endpoint, opts.Credential, co)
	default:
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "neither a connection string nor an endpoint was given")
	}
	if err != nil {
		// The SDK's message may quote the connection string: never pass it on.
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "the table storage connection settings are malformed")
	}
	return &Tables{svc: svc, created: map[string]*Table{}}, nil
}

// sasConnectionString returns the table endpoint and the SAS token of a
// connection string of the form TableEndpoint=...;SharedAccessSignature=...
// (no AccountKey).
func sasConnectionString(cs string) (endpoint, sas string, ok bool) {
	parts := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		if name, value, found := strings.Cut(strings.TrimSpace(part), "="); found {
			parts[strings.ToLower(name)] = value
		}
	}
	endpoint, sas = strings.TrimRight(parts["tableendpoint"], "/"), strings.TrimPrefix(parts["sharedaccesssignature"], "?")
	_, hasKey := parts["accountkey"]
	return endpoint, sas, endpoint != "" && sas != "" && !hasKey
}

// Table returns the named table, creating it on first use.
func (t *Tables) Table(ctx context.Context, name string) (store.Table, error) {
	if err := store.CheckTableName(name); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tb, ok := t.created[name]; ok {
		return tb, nil
	}
	if _, err := t.svc.CreateTable(ctx, name, nil); err != nil && !hasCode(err, aztables.TableAlreadyExists) {
		return nil, translate("aztable.CreateTable", err)
	}
	tb := &Table{c: t.svc.NewClient(name)}
	t.created[name] = tb
	return tb, nil
}

// Ping lists at most one table: it proves the service answers and the
// credentials are accepted.
func (t *Tables) Ping(ctx context.Context) error {
	one := int32(1)
	pager := t.svc.NewListTablesPager(&aztables.ListTablesOptions{Top: &one})
	if _, err := pager.NextPage(ctx); err != nil {
		return translate("aztable.Ping", err)
	}
	return nil
}

// Table is one table.
type Table struct {
	c *aztables.Client
}

var _ store.Table = (*Table)(nil)

// Get implements store.Table.
func (t *Table) Get(ctx context.Context, pk, rk string) (store.Entity, error) {
	if err := checkKeys(pk, rk); err != nil {
		return store.Entity{}, err
	}
	resp, err := t.c.GetEntity(ctx, pk, rk, nil)
	if err != nil {
		return store.Entity{}, translate("aztable.Get", err)
	}
	return decode(resp.Value)
}

// Insert implements store.Table.
func (t *Table) Insert(ctx context.Context, e store.Entity) (string, error) {
	body, err := encode(e)
	if err != nil {
		return "", err
	}
	resp, err := t.c.AddEntity(ctx, body, nil)
	if err != nil {
		return "", translate("aztable.Insert", err)
	}
	return string(resp.ETag), nil
}

// Update implements store.Table.
func (t *Table) Update(ctx context.Context, e store.Entity, ifMatch string) (string, error) {
	body, err := encode(e)
	if err != nil {
		return "", err
	}
	resp, err := t.c.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: etag(ifMatch), UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return "", translate("aztable.Update", err)
	}
	return string(resp.ETag), nil
}

// Upsert implements store.Table.
func (t *Table) Upsert(ctx context.Context, e store.Entity) (string, error) {
	body, err := encode(e)
	if err != nil {
		return "", err
	}
	resp, err := t.c.UpsertEntity(ctx, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return "", translate("aztable.Upsert", err)
	}
	return string(resp.ETag), nil
}

// Delete implements store.Table.
func (t *Table) Delete(ctx context.Context, pk, rk, ifMatch string) error {
	if err := checkKeys(pk, rk); err != nil {
		return err
	}
	if _, err := t.c.DeleteEntity(ctx, pk, rk, &aztables.DeleteEntityOptions{IfMatch: etag(ifMatch)}); err != nil {
		return translate("aztable.Delete", err)
	}
	return nil
}

// continuation is the decoded form of a page token.
type continuation struct {
	PK string `json:"p"`
	RK string `json:"r"`
}

// Query implements store.Table.
func (t *Table) Query(ctx context.Context, q store.Query) (store.Page, error) {
	const op = "aztable.Query"
	from, to := q.RowKeyFrom, q.RowKeyTo
	if q.Prefix != "" {
		from, to = q.Prefix, store.PrefixEnd(q.Prefix)
	}
	var clauses []string
	if q.PartitionKey != "" {
		clauses = append(clauses, "PartitionKey eq "+quote(q.PartitionKey))
	}
	if q.PartitionPrefix != "" {
		clauses = append(clauses, "PartitionKey ge "+quote(q.PartitionPrefix), "PartitionKey lt "+quote(store.PrefixEnd(q.PartitionPrefix)))
	}
	if from != "" {
		clauses = append(clauses, "RowKey ge "+quote(from))
	}
	if to != "" {
		clauses = append(clauses, "RowKey lt "+quote(to))
	}
	top := int32(q.Top)
	if top <= 0 || top > 1000 {
		top = 1000
	}
	opts := &aztables.ListEntitiesOptions{Top: &top}
	if len(clauses) > 0 {
		f := strings.Join(clauses, " and ")
		opts.Filter = &f
	}
	if q.Continuation != "" {
		var c continuation
		b, err := base64.RawURLEncoding.DecodeString(q.Continuation)
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil || c.PK == "" {
			return store.Page{}, switchboard.Errorf(switchboard.EINVALID, op, "malformed continuation token")
		}
		opts.NextPartitionKey = &c.PK
		if c.RK != "" {
			opts.NextRowKey = &c.RK
		}
	}
	pager := t.c.NewListEntitiesPager(opts)
	resp, err := pager.NextPage(ctx)
	if err != nil {
		return store.Page{}, translate(op, err)
	}
	page := store.Page{Entities: make([]store.Entity, 0, len(resp.Entities))}
	for _, raw := range resp.Entities {
		e, err := decode(raw)
		if err != nil {
			return store.Page{}, err
		}
		page.Entities = append(page.Entities, e)
	}
	if resp.NextPartitionKey != nil && *resp.NextPartitionKey != "" {
		c := continuation{PK: *resp.NextPartitionKey}
		if resp.NextRowKey != nil {
			c.RK = *resp.NextRowKey
		}
		b, _ := json.Marshal(c)
		page.Continuation = base64.RawURLEncoding.EncodeToString(b)
	}
	return page, nil
}

// Batch implements store.Table. The limits are checked here because Azurite
// does not enforce them.
func (t *Table) Batch(ctx context.Context, ops []store.Op) error {
	if err := store.CheckBatch(ops); err != nil {
		return err
	}
	actions := make([]aztables.TransactionAction, 0, len(ops))
	for _, o := range ops {
		e := o.Entity
		if o.Kind == store.OpDelete {
			e = store.Entity{PartitionKey: e.PartitionKey, RowKey: e.RowKey}
		}
		body, err := encode(e)
		if err != nil {
			return err
		}
		a := aztables.TransactionAction{Entity: body}
		switch o.Kind {
		case store.OpInsert:
			a.ActionType = aztables.TransactionTypeAdd
		case store.OpUpsert:
			a.ActionType = aztables.TransactionTypeInsertReplace
		case store.OpMerge:
			a.ActionType = aztables.TransactionTypeInsertMerge
		case store.OpUpdate:
			a.ActionType, a.IfMatch = aztables.TransactionTypeUpdateReplace, etagAny(o.IfMatch)
		case store.OpDelete:
			a.ActionType, a.IfMatch = aztables.TransactionTypeDelete, etagAny(o.IfMatch)
		default:
			return switchboard.Errorf(switchboard.EINVALID, "aztable.Batch", "unknown operation kind %d", o.Kind)
		}
		actions = append(actions, a)
	}
	if _, err := t.c.SubmitTransaction(ctx, actions, nil); err != nil {
		return translate("aztable.Batch", err)
	}
	return nil
}

func etag(ifMatch string) *azcore.ETag {
	if ifMatch == "" {
		return nil
	}
	e := azcore.ETag(ifMatch)
	return &e
}

// etagAny returns ifMatch, or "*" for any: a batch update or delete without
// If-Match would be an upsert-like operation the store does not offer.
func etagAny(ifMatch string) *azcore.ETag {
	if ifMatch == "" {
		ifMatch = "*"
	}
	e := azcore.ETag(ifMatch)
	return &e
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func checkKeys(pk, rk string) error {
	if err := store.CheckKey("partition key", pk); err != nil {
		return err
	}
	return store.CheckKey("row key", rk)
}

// encode renders an entity in the JSON form of the Table service, with
// type annotations for every type JSON cannot carry by itself.
func encode(e store.Entity) ([]byte, error) {
	if err := checkKeys(e.PartitionKey, e.RowKey); err != nil {
		return nil, err
	}
	m := make(map[string]any, 2+2*len(e.Props))
	m["PartitionKey"], m["RowKey"] = e.PartitionKey, e.RowKey
	for name, v := range e.Props {
		if name == "PartitionKey" || name == "RowKey" || name == "Timestamp" || strings.Contains(name, "@odata") {
			return nil, switchboard.Errorf(switchboard.EINVALID, "aztable", "property name %q is reserved", name)
		}
		switch v := v.(type) {
		case string, bool, int32:
			m[name] = v
		case int64:
			m[name], m[name+"@odata.type"] = strconv.FormatInt(v, 10), "Edm.Int64"
		case float64:
			m[name], m[name+"@odata.type"] = v, "Edm.Double"
		case time.Time:
			m[name], m[name+"@odata.type"] = v.UTC().Format(time.RFC3339Nano), "Edm.DateTime"
		case []byte:
			m[name], m[name+"@odata.type"] = base64.StdEncoding.EncodeToString(v), "Edm.Binary"
		default:
			return nil, switchboard.Errorf(switchboard.EINVALID, "aztable", "property %q has unsupported type %T", name, v)
		}
	}
	return json.Marshal(m)
}

// decode reads an entity of the Table service's JSON form.
func decode(raw []byte) (store.Entity, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return store.Entity{}, switchboard.Errorf(switchboard.EINTERNAL, "aztable.decode", "malformed entity: %v", err)
	}
	e := store.Entity{Props: make(map[string]any, len(m))}
	str := func(r json.RawMessage) string {
		var s string
		_ = json.Unmarshal(r, &s)
		return s
	}
	for name, r := range m {
		switch {
		case name == "PartitionKey":
			e.PartitionKey = str(r)
		case name == "RowKey":
			e.RowKey = str(r)
		case name == "odata.etag":
			e.ETag = str(r)
		case name == "Timestamp":
			e.Timestamp, _ = time.Parse(time.RFC3339Nano, str(r))
		case strings.HasPrefix(name, "odata.") || strings.Contains(name, "@odata."):
		default:
			v, err := decodeProp(str(m[name+"@odata.type"]), r)
			if err != nil {
				return store.Entity{}, switchboard.Errorf(switchboard.EINTERNAL, "aztable.decode", "property %q: %v", name, err)
			}
			e.Props[name] = v
		}
	}
	return e, nil
}

func decodeProp(edm string, r json.RawMessage) (any, error) {
	var s string
	switch edm {
	case "Edm.Int64":
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, err
		}
		return strconv.ParseInt(s, 10, 64)
	case "Edm.DateTime":
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, err
		}
		return time.Parse(time.RFC3339Nano, s)
	case "Edm.Binary":
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(s)
	case "Edm.Double":
		var f float64
		if err := json.Unmarshal(r, &f); err != nil {
			// "NaN", "Infinity" travel as strings.
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, err
			}
			return strconv.ParseFloat(s, 64)
		}
		return f, nil
	case "Edm.Guid", "Edm.String":
		err := json.Unmarshal(r, &s)
		return s, err
	case "":
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, err
		}
		if f, ok := v.(float64); ok {
			// The service omits the annotation for Int32 and for a Double it
			// was given without one; whole numbers in range are Int32.
			if n := int32(f); float64(n) == f && !strings.ContainsAny(string(r), ".eE") {
				return n, nil
			}
			return f, nil
		}
		return v, nil
	}
	return nil, fmt.Errorf("unsupported type %s", edm)
}

// Storage error codes that mean the same to the rest of Switchboard.
var codes = []struct {
	code string
	on   []string
}{
	{switchboard.ECONFLICT, []string{string(aztables.EntityAlreadyExists), string(aztables.TableAlreadyExists)}},
	{switchboard.EPRECONDITION, []string{string(aztables.UpdateConditionNotSatisfied), "ConditionNotMet"}},
	{switchboard.ENOTFOUND, []string{string(aztables.ResourceNotFound), string(aztables.EntityNotFound), string(aztables.TableNotFound)}},
	{
		switchboard.EINVALID,
		[]string{
			string(aztables.InvalidInput),
			string(aztables.PropertyValueTooLarge),
			string(aztables.EntityTooLarge),
			string(aztables.OutOfRangeInput),
			string(aztables.InvalidValueType),
			string(aztables.TooManyProperties),
			string(aztables.PropertyNameInvalid),
			string(aztables.PropertyNameTooLong),
			string(aztables.InvalidDuplicateRow),
			"CommandsInBatchActOnDifferentPartitions",
			"InvalidOperation",
		},
	},
}

func hasCode(err error, code aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.ErrorCode == string(code) || strings.Contains(re.Error(), string(code)))
}

// translate maps an SDK error to a switchboard error. A failed batch is a
// 202 whose inner code is only in the body text, so the text is searched
// too. Neither the request nor the response body is passed on: entities may
// hold secrets.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: "table storage did not answer in time", Err: switchboard.Redact(err)}
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		// Transport errors quote the request URL, whose query holds a SAS
		// token when the connection string has one.
		return &switchboard.Error{
			Code:    switchboard.EUNAVAILABLE,
			Op:      op,
			Message: "table storage is unreachable: " + firstLine(switchboard.RedactURLs(err.Error())),
		}
	}
	text := re.Error()
	for _, c := range codes {
		for _, on := range c.on {
			if re.ErrorCode == on || strings.Contains(text, on) {
				return &switchboard.Error{Code: c.code, Op: op, Message: "table storage: " + on}
			}
		}
	}
	switch {
	case re.StatusCode == http.StatusNotFound:
		return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Message: "table storage: not found"}
	case re.StatusCode == http.StatusConflict:
		return &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Message: "table storage: conflict"}
	case re.StatusCode == http.StatusPreconditionFailed:
		return &switchboard.Error{Code: switchboard.EPRECONDITION, Op: op, Message: "table storage: the entity was changed by someone else"}
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("table storage refused the credentials (%d "+
			"%s)", re.StatusCode, re.ErrorCode)}
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
		return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("table storage is busy or failing (%d "+
			"%s)", re.StatusCode, re.ErrorCode)}
	}
	return &switchboard.Error{Code: switchboard.EINTERNAL, Op: op, Message: fmt.Sprintf("table storage: %d %s", re.StatusCode, re.ErrorCode)}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
