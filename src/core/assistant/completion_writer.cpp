#include "core/assistant/completion_writer.h"

#include "core/assistant/core.h"

namespace llmassist::detail::assistant {

void CompletionWriter::start() {
  const int n = std::max(1, core_.ctx.options.completion_writers);
  for (int i = 0; i < n; ++i) {
    auto lane = std::make_unique<Lane>();
    lane->running = true;
    lanes_.push_back(std::move(lane));
  }
  for (auto& lane : lanes_) {
    lane->thread =
        std::thread([self = core_.shared_from_this(), l = lane.get()] { self->writer.run(*l); });
  }
}

void CompletionWriter::stop() {
  for (auto& lane : lanes_) {
    {
      std::lock_guard lock(lane->mu);
      lane->running = false;
    }
    lane->ready.notify_all();
  }
  for (auto& lane : lanes_) {
    if (lane->thread.joinable()) lane->thread.join();
  }
}

void CompletionWriter::completed(Done d) {
  std::vector<Done> here;
  if (!lanes_.empty()) {
    const auto n = static_cast<std::uint64_t>(lanes_.size());
    Lane& lane = *lanes_[static_cast<std::uint64_t>(d.reply.chat_id) % n];
    std::lock_guard lock(lane.mu);
    if (lane.running) {
      lane.queue.push_back(std::move(d));
      // The lane waits only when its queue is empty.
      if (lane.queue.size() == 1) lane.ready.notify_one();
      return;
    }
  }
  here.push_back(std::move(d));
  write(here);
}

void CompletionWriter::run(Lane& lane) {
  std::vector<Done> batch;
  std::unique_lock lock(lane.mu);
  while (true) {
    lane.ready.wait(lock, [&] { return !lane.queue.empty() || !lane.running; });
    if (lane.queue.empty()) return;  // stopped, and nothing left
    batch.swap(lane.queue);
    lock.unlock();
    write(batch);
    batch.clear();
    lock.lock();
  }
}

void CompletionWriter::write(std::vector<Done>& batch) {
  Endings ending;
  for (const Done& d : batch) ++(d.drafted ? ending.drafts : ending.sends)[d.reply.chat_id];
  std::vector<ReplyStep> steps;
  std::vector<Continuation> nexts;
  std::vector<const Done*> of;
  steps.reserve(batch.size());
  nexts.reserve(batch.size());
  of.reserve(batch.size());
  // The changes first (a failure is written here, on its own path)...
  for (const Done& d : batch) {
    ReplyStep step;
    step.id = d.reply.id;
    if (d.drafted ? !core_.drafting.draft_step(d.reply, *d.drafted, step.change)
                  : !core_.outbox.send_step(d.reply, *d.sent, step.change)) {
      continue;
    }
    steps.push_back(std::move(step));
    of.push_back(&d);
  }
  if (steps.empty()) return;
  // ...then, against the free slots less those other lanes' batches hold, what carries each
  // chat on: an approved draft lets the answer go out and the chat's next question be drafted
  // with this write; a pending one holds the chat until an operator decides.
  Slots used;
  {
    std::lock_guard slots_lock(slots_mu_);
    Slots slots = core_.dispatcher.free_slots();
    slots.drafts -= reserved_.drafts;
    slots.sends -= reserved_.sends;
    for (std::size_t k = 0; k < steps.size(); ++k) {
      const Done& d = *of[k];
      Continuation next;
      if (!d.drafted) {
        next = continuation(d.chat, Ending::kSend, slots, ending);
      } else if (steps[k].change.to == ReplyStatus::kApproved) {
        next = continuation(d.chat, Ending::kDraft, slots, ending);
      } else {
        next.complete = true;
      }
      steps[k].claims = std::move(next.claims);
      used.drafts += next.draft >= 0 ? 1 : 0;
      used.sends += next.send >= 0 ? 1 : 0;
      nexts.push_back(std::move(next));
    }
    reserved_.drafts += used.drafts;
    reserved_.sends += used.sends;
  }
  auto stored = core_.ctx.parts.store->transition_and_claim_each(steps);
  for (std::size_t k = 0; k < steps.size(); ++k) {
    if (of[k]->drafted) {
      after_draft(*of[k], steps[k].change, nexts[k], stored[k]);
    } else {
      after_send(*of[k], nexts[k], stored[k]);
    }
  }
  // What was claimed has started (and counts as in flight) or was not taken.
  std::lock_guard slots_lock(slots_mu_);
  reserved_.drafts -= used.drafts;
  reserved_.sends -= used.sends;
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
