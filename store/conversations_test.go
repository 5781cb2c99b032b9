package store_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/modellab/modellab"
	"github.com/modellab/modellab/store"
)

func mustConversation(t *testing.T, db *store.DB, c modellab.Conversation) modellab.Conversation {
	t.Helper()
	if err := db.CreateConversation(context.Background(), &c); err != nil {
		t.Fatalf("CreateConversation(%q): %v", c.Title, err)
	}
	return c
}

func testConversations(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	a, b := mustUser(t, db, "a"), mustUser(t, db, "b")
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 123456789, time.UTC)
	var mine []modellab.Conversation
	for i, title := range []string{"first", "second", "third"} {
		mine = append(mine, mustConversation(t, db, modellab.Conversation{
			Title: title, ModelID: "mdl_whatever", OwnerID: a.ID, CreatedAt: t0.Add(time.Duration(i) * time.Minute)}))
	}
	// Same creation time: the id breaks the tie, in byte order.
	tie := mustConversation(t, db, modellab.Conversation{ID: "cnv_zzz", ModelID: "mdl_whatever", OwnerID: a.ID, CreatedAt: mine[2].CreatedAt})
	mustConversation(t, db, modellab.Conversation{Title: "b's", ModelID: "mdl_whatever", OwnerID: b.ID})
	if got := mine[0].CreatedAt; !got.Equal(t0.Truncate(time.Microsecond)) || !got.Equal(mine[0].UpdatedAt) {
		t.Errorf("CreatedAt = %v, UpdatedAt = %v, want both %v", got, mine[0].UpdatedAt, t0.Truncate(time.Microsecond))
	}

	list, err := db.ListConversations(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []modellab.Conversation{tie, mine[2], mine[1], mine[0]}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("ListConversations = %+v\nwant %+v", list, want)
	}
	got, err := db.GetConversation(ctx, mine[1].ID)
	if err != nil || !reflect.DeepEqual(got, mine[1]) {
		t.Errorf("GetConversation = %+v, %v; want %+v", got, err, mine[1])
	}
	if _, err := db.GetConversation(ctx, "cnv_missing"); code(err) != modellab.ENOTFOUND {
		t.Errorf("GetConversation(missing): %v, want not_found", err)
	}
	for _, c := range []modellab.Conversation{
		{ModelID: "mdl_x", OwnerID: "usr_nobody"},
		{ModelID: "", OwnerID: a.ID},
		{Title: "bad\x00title", ModelID: "mdl_x", OwnerID: a.ID},
	} {
		if err := db.CreateConversation(ctx, &c); code(err) != modellab.EINVALID {
			t.Errorf("CreateConversation(%+v): %v, want invalid_argument", c, err)
		}
	}
	if err := db.DeleteConversation(ctx, mine[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteConversation(ctx, mine[0].ID); code(err) != modellab.ENOTFOUND {
		t.Errorf("second DeleteConversation: %v, want not_found", err)
	}
	if list, _ := db.ListConversations(ctx, b.ID); len(list) != 1 || list[0].Title != "b's" {
		t.Errorf("b's list = %+v", list)
	}
}

func testMessages(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	a := mustUser(t, db, "a")
	c := mustConversation(t, db, modellab.Conversation{ModelID: "mdl_whatever", OwnerID: a.ID})
	at := c.CreatedAt.Add(time.Minute)
	turn := []modellab.Message{
		{Role: modellab.RoleUser, Content: "Hello ✓", Status: modellab.MessageDone, CreatedAt: at},
		{Role: modellab.RoleAssistant, Status: modellab.MessageStreaming},
	}
	if err := db.AddMessages(ctx, c.ID, turn, "Hello ✓"); err != nil {
		t.Fatalf("AddMessages: %v", err)
	}
	if turn[0].ID == "" || turn[1].ID == turn[0].ID || !turn[1].CreatedAt.Equal(at) {
		t.Fatalf("AddMessages left %+v", turn)
	}
	turn[1].Content, turn[1].Status = "partial", modellab.MessageCanceled
	if err := db.UpdateMessage(ctx, &turn[1]); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	// A second turn: the title stays the first one's.
	second := []modellab.Message{{Role: modellab.RoleUser, Content: "again", Status: modellab.MessageDone, CreatedAt: at.Add(time.Second)}}
	if err := db.AddMessages(ctx, c.ID, second, "again"); err != nil {
		t.Fatal(err)
	}
	msgs, err := db.ListMessages(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]modellab.Message{}, turn...), second...)
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("ListMessages = %+v\nwant %+v", msgs, want)
	}
	got, _ := db.GetConversation(ctx, c.ID)
	if got.Title != "Hello ✓" || !got.UpdatedAt.Equal(second[0].CreatedAt) {
		t.Errorf("after two turns: title %q updated %v, want %q %v", got.Title, got.UpdatedAt, "Hello ✓", second[0].CreatedAt)
	}
	if err := db.UpdateMessage(ctx, &modellab.Message{ID: "msg_missing", Status: modellab.MessageDone}); code(err) != modellab.ENOTFOUND {
		t.Errorf("UpdateMessage(missing): %v", err)
	}
	if err := db.UpdateMessage(ctx, &modellab.Message{ID: turn[1].ID, Status: "lost"}); code(err) != modellab.EINVALID {
		t.Errorf("UpdateMessage(bad status): %v", err)
	}
	if err := db.AddMessages(ctx, "cnv_missing", second[:1:1], ""); code(err) != modellab.ENOTFOUND {
		t.Errorf("AddMessages(missing conversation): %v, want not_found", err)
	}
	testConcurrentTurns(t, db, a.ID)
	// Deleting the conversation deletes its messages.
	if err := db.DeleteConversation(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if msgs, err := db.ListMessages(ctx, c.ID); err != nil || len(msgs) != 0 {
		t.Errorf("messages after delete: %v, %v", msgs, err)
	}
}

// testConcurrentTurns appends from several goroutines at once: every turn
// lands whole and in a position of its own (or is refused as a conflict).
func testConcurrentTurns(t *testing.T, db *store.DB, owner string) {
	ctx := context.Background()
	c := mustConversation(t, db, modellab.Conversation{ModelID: "mdl_whatever", OwnerID: owner})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.AddMessages(ctx, c.ID, []modellab.Message{
				{Role: modellab.RoleUser, Content: "q", Status: modellab.MessageDone},
				{Role: modellab.RoleAssistant, Content: "a", Status: modellab.MessageDone},
			}, "")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch code(err) {
		case "":
			ok++
		case modellab.ECONFLICT:
		default:
			t.Errorf("concurrent AddMessages: %v", err)
		}
	}
	msgs, err := db.ListMessages(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2*ok || ok == 0 {
		t.Fatalf("%d turns succeeded, %d messages stored", ok, len(msgs))
	}
	for i := 0; i < len(msgs); i += 2 {
		if msgs[i].Role != modellab.RoleUser || msgs[i+1].Role != modellab.RoleAssistant {
			t.Fatalf("turns interleaved at %d: %s then %s", i, msgs[i].Role, msgs[i+1].Role)
		}
	}
}

func testModelByName(t *testing.T, open opener) {
	db := open(t, store.Options{})
	ctx := context.Background()
	a, b := mustUser(t, db, "a"), mustUser(t, db, "b")
	g := mustModel(t, db, modellab.Model{Name: "shared"})
	mine := mustModel(t, db, modellab.Model{Name: "shared", OwnerID: &a.ID})
	secret := mustModel(t, db, modellab.Model{Name: "secret", OwnerID: &b.ID})
	for _, tt := range []struct {
		owner, name, want string
	}{
		{a.ID, "shared", mine.ID},
		{b.ID, "shared", g.ID},
		{"", "shared", g.ID},
		{b.ID, "secret", secret.ID},
		{a.ID, "secret", ""},
		{a.ID, "nothing", ""},
	} {
		m, err := db.ModelByName(ctx, tt.owner, tt.name)
		switch {
		case tt.want == "" && code(err) != modellab.ENOTFOUND:
			t.Errorf("ModelByName(%s, %q) = %v, %v; want not_found", tt.owner, tt.name, m.ID, err)
		case tt.want != "" && (err != nil || m.ID != tt.want):
			t.Errorf("ModelByName(%s, %q) = %v, %v; want %s", tt.owner, tt.name, m.ID, err, tt.want)
		}
	}
}
