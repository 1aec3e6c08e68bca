#include "core/assistant/completion_writer.h"

#include "core/assistant/core.h"

namespace llmassist::detail::assistant {

void CompletionWriter::start() {
  {
    std::lock_guard lock(mu_);
    running_ = true;
  }
  thread_ = std::thread([self = core_.shared_from_this()] { self->writer.run(); });
}

void CompletionWriter::stop() {
  {
    std::lock_guard lock(mu_);
    running_ = false;
  }
  ready_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CompletionWriter::completed(Done d) {
  std::vector<Done> here;
  {
    std::lock_guard lock(mu_);
    if (running_) {
      queue_.push_back(std::move(d));
      // The writer waits only when the queue is empty.
      if (queue_.size() == 1) ready_.notify_one();
      return;
    }
  }
  here.push_back(std::move(d));
  write(here);
}

void CompletionWriter::run() {
  std::vector<Done> batch;
  std::unique_lock lock(mu_);
  while (true) {
    ready_.wait(lock, [&] { return !queue_.empty() || !running_; });
    if (queue_.empty()) return;  // stopped, and nothing left
    batch.swap(queue_);
    lock.unlock();
    write(batch);
    batch.clear();
    lock.lock();
  }
}

void CompletionWriter::write(std::vector<Done>& batch) {
  Slots slots = core_.dispatcher.free_slots();
  Endings ending;
  for (const Done& d : batch) ++(d.drafted ? ending.drafts : ending.sends)[d.reply.chat_id];
  std::vector<ReplyStep> steps;
  std::vector<Continuation> nexts;
  std::vector<const Done*> of;
  steps.reserve(batch.size());
  nexts.reserve(batch.size());
  of.reserve(batch.size());
  for (const Done& d : batch) {
    ReplyStep step;
    step.id = d.reply.id;
    Continuation next;
    if (d.drafted) {
      if (!core_.drafting.draft_step(d.reply, *d.drafted, d.extras, step.change)) continue;
      // Approved at once: the answer may go out, and the chat's next question be drafted,
      // with this write. A pending draft holds the chat until an operator decides.
      if (step.change.to == ReplyStatus::kApproved) {
        next = continuation(d.chat, Ending::kDraft, slots, ending);
      } else {
        next.complete = true;
      }
    } else {
      if (!core_.outbox.send_step(d.reply, *d.sent, step.change)) continue;
      next = continuation(d.chat, Ending::kSend, slots, ending);
    }
    step.claims = std::move(next.claims);
    steps.push_back(std::move(step));
    nexts.push_back(std::move(next));
    of.push_back(&d);
  }
  if (steps.empty()) return;
  auto stored = core_.ctx.parts.store->transition_and_claim_each(steps);
  for (std::size_t k = 0; k < steps.size(); ++k) {
    if (of[k]->drafted) {
      after_draft(*of[k], steps[k].change, nexts[k], stored[k]);
    } else {
      after_send(*of[k], nexts[k], stored[k]);
    }
  }
}

// Skips a claim that cannot take anything: while another draft (send) of the chat is in flight
// and does not end in this batch, the chat's next waits for it, and its end claims the next.
CompletionWriter::Continuation CompletionWriter::continuation(const Chat& chat, Ending ending,
                                                              Slots& slots, const Endings& batch) {
  Continuation c;
  (ending == Ending::kDraft ? slots.drafts : slots.sends) += 1;
  if (core_.ctx.stopping.load()) return c;
  c.complete = true;
  const auto count = [&](const std::map<ChatId, int>& of) {
    const auto it = of.find(chat.id);
    return it == of.end() ? 0 : it->second;
  };
  const auto others =
      core_.dispatcher.others_in_flight(chat.id, count(batch.drafts), count(batch.sends));
  if (others.draft) {
    // its end claims the next
  } else if (slots.drafts > 0) {
    --slots.drafts;
    c.draft = static_cast<int>(c.claims.size());
    c.claims.push_back(core_.drafting.draft_claim(ReplyStatus::kNew, core_.ctx.worker, {chat.id}, 1,
                                                  false, chat.channel));
  } else {
    c.complete = false;
    core_.dispatcher.starve(kDraftWork);
  }
  if (others.send) {
    // its end claims the next
  } else if (slots.sends > 0) {
    --slots.sends;
    c.send = static_cast<int>(c.claims.size());
    c.claims.push_back(core_.outbox.send_claim({chat.id}, 1, false, chat.channel));
  } else {
    c.complete = false;
    core_.dispatcher.starve(kSendWork);
  }
  return c;
}

void CompletionWriter::carry_on(const Continuation& c, ChangeAndClaims& done) {
  if (c.draft >= 0) {
    for (auto& r : done.claimed[static_cast<std::size_t>(c.draft)]) {
      core_.drafting.draft(std::move(r), &done.chat);
    }
  }
  if (c.send >= 0) {
    for (auto& r : done.claimed[static_cast<std::size_t>(c.send)]) {
      core_.outbox.send(std::move(r), &done.chat);
    }
  }
}

void CompletionWriter::after_draft(const Done& d, const ReplyChange& change,
                                   const Continuation& next, Result<ChangeAndClaims>& stored) {
  if (core_.ctx.failed(stored, fmt::format("storing the draft of reply {}", d.reply.id))) {
    core_.drafting.finish(d.reply);
    return;
  }
  core_.dispatcher.count(&AssistantStats::drafts);
  if (change.to == ReplyStatus::kPending) core_.operators.post_draft(stored->reply, d.chat);
  // What comes next starts before this draft leaves the count, so that the drafts in flight
  // never exceed the limit in between (the worker counts them too).
  carry_on(next, *stored);
  core_.drafting.finish(d.reply, next.complete);
}

void CompletionWriter::after_send(const Done& d, const Continuation& next,
                                  Result<ChangeAndClaims>& stored) {
  if (core_.ctx.failed(stored, fmt::format("marking reply {} sent", d.reply.id))) {
    core_.outbox.finish(d.reply);
    return;
  }
  core_.dispatcher.count(&AssistantStats::sent);
  carry_on(next, *stored);  // before this send leaves the count, as after a draft
  core_.outbox.finish(d.reply, next.complete);
}

}  // namespace llmassist::detail::assistant
