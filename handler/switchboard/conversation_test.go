package switchboard

import "testing"

func TestIsTaskConversation(t *testing.T) {
	cases := []struct {
		name string
		id   string
		want bool
	}{
		{"task attempt", "task:5f0c:1", true},
		{"upper case", "TASK:5f0c:1", true},
		{"mixed case", "Task:x", true},
		{"prefix alone", "task:", true},
		{"caller's id", "call-42", false},
		{"no colon", "task", false},
		{"prefix later", "my-task:1", false},
		{"empty", "", false},
	}
	for _, c := range cases {
		if got := IsTaskConversation(c.id); got != c.want {
			t.Errorf("%s: IsTaskConversation(%q) = %v, want %v", c.name, c.id, got, c.want)
		}
	}
}
