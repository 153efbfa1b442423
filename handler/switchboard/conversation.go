package switchboard

import "strings"

// TaskConversationPrefix starts the routing conversation id of every
// outbound task attempt ("task:{taskId}:{attempt}"). The route API refuses
// such ids, so that a flow cannot release a task's agent in the middle of
// its call.
const TaskConversationPrefix = "task:"

// IsTaskConversation reports whether id is (or poses as) the conversation
// of an outbound task attempt: it starts with TaskConversationPrefix in
// any letter case.
func IsTaskConversation(id string) bool {
	return len(id) >= len(TaskConversationPrefix) && strings.EqualFold(id[:len(TaskConversationPrefix)], TaskConversationPrefix)
}
