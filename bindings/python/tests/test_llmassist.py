"""The Python bindings against a real SQLite file and the shipped knowledge base."""

import os
import tempfile
import threading
import unittest

import llmassist


class StoreTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "bot.db")
        self.store = llmassist.SqliteStore(self.path)

    def tearDown(self):
        del self.store
        self.dir.cleanup()

    def test_inbound_messages_are_stored_once(self):
        chat = self.store.upsert_chat("telegram", "42", title="Ann")
        self.assertEqual(chat.channel, "telegram")
        self.assertEqual(chat.mode, "bot")
        first = self.store.append_inbound(chat.id, "Where is my order?", dedup_key="telegram:1")
        again = self.store.append_inbound(chat.id, "Where is my order?", dedup_key="telegram:1")
        self.assertFalse(first.duplicate)
        self.assertTrue(again.duplicate)
        self.assertEqual(first.message.id, again.message.id)
        self.assertEqual(self.store.get_reply(first.reply_id).status, "new")
        history = self.store.history(chat.id)
        self.assertEqual([m.text for m in history], ["Where is my order?"])
        self.assertEqual(history[0].role, "user")
        self.assertEqual(len(self.store.replies(status="new")), 1)

    def test_a_second_store_on_the_same_file_sees_the_data(self):
        chat = self.store.upsert_chat("console", "local")
        self.store.append_inbound(chat.id, "hello")
        other = llmassist.SqliteStore(self.path)
        self.assertEqual(other.history(chat.id)[0].text, "hello")

    def test_errors_raise_llmassist_error_with_a_code(self):
        with self.assertRaises(llmassist.Error) as caught:
            self.store.get_reply(999)
        self.assertEqual(caught.exception.code, "not_found")
        with self.assertRaises(llmassist.Error) as caught:
            self.store.append_inbound(0, "no chat")
        self.assertEqual(caught.exception.code, "invalid_argument")
        with self.assertRaises(llmassist.Error) as caught:
            self.store.replies(status="nonsense")
        self.assertEqual(caught.exception.code, "invalid_argument")
        with self.assertRaises(llmassist.Error) as caught:
            llmassist.SqliteStore(os.path.join(self.dir.name, "missing", "x.db"))
        self.assertEqual(caught.exception.code, "unavailable")

    def test_threads_write_concurrently_without_the_gil_held(self):
        chat = self.store.upsert_chat("console", "threads")
        def write(n):
            for i in range(50):
                self.store.append_inbound(chat.id, "m", dedup_key=f"t{n}-{i}")
        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(self.store.history(chat.id, limit=1000)), 200)


class ChainTest(unittest.TestCase):
    def test_the_shipped_knowledge_base_answers(self):
        chain = llmassist.Chain()
        self.assertEqual(chain.providers, ["knowledge_base"])
        answer = chain.ask("How do I connect the bot to Telegram?")
        self.assertIn("BotFather", answer.text)
        self.assertEqual(answer.provider, "knowledge_base")
        self.assertEqual(answer.providers_tried, 1)

    def test_no_answer_and_bad_config_raise(self):
        with self.assertRaises(llmassist.Error) as caught:
            llmassist.Chain().ask("What is the airspeed of a swallow?")
        self.assertEqual(caught.exception.code, "not_found")
        self.assertEqual(caught.exception.reason, "no_answer")
        with self.assertRaises(llmassist.Error) as caught:
            llmassist.Chain('{"providers": [{"type": "openai", "model": "m", "temprature": 1}]}')
        self.assertEqual(caught.exception.code, "invalid_argument")
        self.assertIn("$.providers[0].temprature", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
