BEGIN TRANSACTION;
CREATE TABLE "_migrations" (
   "name" TEXT PRIMARY KEY,
   "applied_at" TEXT
);
INSERT INTO "_migrations" VALUES('0001_initial','2026-12-02T13:03:05.368609Z');
INSERT INTO "_migrations" VALUES('0002_flags_cases_holds','2026-12-02T13:03:05.368609Z');
INSERT INTO "_migrations" VALUES('0003_listing_indexes','2026-12-02T13:03:05.368609Z');
INSERT INTO "_migrations" VALUES('0004_discs','2026-12-02T13:03:05.368609Z');
CREATE TABLE "audit" (
   "seq" INTEGER PRIMARY KEY,
   "at" TEXT NOT NULL,
   "actor" TEXT NOT NULL,
   "action" TEXT NOT NULL,
   "subject" TEXT NOT NULL,
   "details" TEXT NOT NULL,
   "prev_hash" TEXT NOT NULL,
   "hash" TEXT NOT NULL
);
INSERT INTO "audit" VALUES(1,'2026-12-02T13:03:05.402192Z','legacy-user','store.init','store','{"avlog":"0.1.0","path":"/tmp/legacy/store"}','0000000000000000000000000000000000000000000000000000000000000000','f1eeb263ae26db88e4685eba52124edf0b2343f7e79cfda57eb12880aba553e7');
INSERT INTO "audit" VALUES(2,'2026-12-02T13:03:05.882770Z','legacy-user','device.register','device:BC-0009','{"custodian":"张三","kind":"bodycam","label":null,"unit":"一中队"}','f1eeb263ae26db88e4685eba52124edf0b2343f7e79cfda57eb12880aba553e7','9278ec60f1ce8ef92b38ebcbe860e03ef0fc3ecddf205c47a3890a9d55987f24');
INSERT INTO "audit" VALUES(3,'2026-12-02T13:03:06.359275Z','legacy-user','ingest.start','ingest:1','{"custodian":"张三","device":"BC-0009","files":3,"registered":true,"skipped":{},"source":"/tmp/legacy/card"}','9278ec60f1ce8ef92b38ebcbe860e03ef0fc3ecddf205c47a3890a9d55987f24','22186b39cb2506ea14cfe7fe6d2bb17a42db0b3935bbebad2f4c8387f6349d36');
INSERT INTO "audit" VALUES(4,'2026-12-02T13:03:06.398404Z','legacy-user','clip.add','clip:1','{"blake3":"7ed2dc4791aa35bfa7b9595047b02dd1a6b912f67142dd384315b2bcea2b0dfb","ingest":1,"path":"DCIM/20261120_090000_0001.MP4","sha256":"a5f863baf23a17bd2de2e10ca0a64a1a9c566f41f13776bd270f12018e09adad","size":2012,"status":"stored"}','22186b39cb2506ea14cfe7fe6d2bb17a42db0b3935bbebad2f4c8387f6349d36','8c7925a5c84bcf31b7001a12881c8f050571642a7f2e7d43a3aca57cc02718a3');
INSERT INTO "audit" VALUES(5,'2026-12-02T13:03:06.417868Z','legacy-user','clip.add','clip:2','{"blake3":"ed9b726f7605af02aa27929e9ef763380a6e9f0eb75e783b1dc1fc163b8da6f7","ingest":1,"path":"DCIM/20261120_091500_0002.MP4","sha256":"b87a388bca23b658cf757f013f34be11a7c0dff7a4eec7d87712c82a1a407cfd","size":2012,"status":"stored"}','8c7925a5c84bcf31b7001a12881c8f050571642a7f2e7d43a3aca57cc02718a3','c2cdb435e825f405d7a013a54b3b9e9e990860f0bcb2f3fed08b4d7eb3252905');
INSERT INTO "audit" VALUES(6,'2026-12-02T13:03:06.422514Z','legacy-user','clip.add','clip:3','{"blake3":"1026f41a5aa02f402929c81e11b02b065b19285f66e99695bf91dfcb84a0a009","ingest":1,"path":"DCIM/20261120_093000_0003.MP4","sha256":"76750d3d77e31cddf79c48958acc97a3716cd013f5db210957075f97012de304","size":2012,"status":"stored"}','c2cdb435e825f405d7a013a54b3b9e9e990860f0bcb2f3fed08b4d7eb3252905','28ee47f8da58564ebae47d93fa1bbdc8558717357531f797e2bc0dbfe470bd83');
INSERT INTO "audit" VALUES(7,'2026-12-02T13:03:06.459399Z','legacy-user','ingest.finish','ingest:1','{"bytes_stored":6036,"duplicates":0,"failed":0,"findings":{"gap":2,"late_handover":3},"status":"done","stored":3}','28ee47f8da58564ebae47d93fa1bbdc8558717357531f797e2bc0dbfe470bd83','474f9566508061e74c3f2eb78ad2b31aef97ac0a872c0b1fbdab65449b8dffa3');
INSERT INTO "audit" VALUES(8,'2026-12-02T13:03:06.907058Z','legacy-user','clip.flag','clip:1','{"note":"当事人投诉","reason":"dispute"}','474f9566508061e74c3f2eb78ad2b31aef97ac0a872c0b1fbdab65449b8dffa3','4cdb917dd870427da31d92ba3ece643b13a9c16fa9ba733aa2386261aeb61c0e');
INSERT INTO "audit" VALUES(9,'2026-12-02T13:03:07.308292Z','legacy-user','clip.flag','clip:2','{"note":null,"reason":"incident"}','4cdb917dd870427da31d92ba3ece643b13a9c16fa9ba733aa2386261aeb61c0e','2b82ad4b3e5063fdab84c0db910848f9f97cbb39eff3faa3818ec364e24afde4');
INSERT INTO "audit" VALUES(10,'2026-12-02T13:03:07.756408Z','legacy-user','clip.unflag','clip:2','{"note":"误标","reason":"incident"}','2b82ad4b3e5063fdab84c0db910848f9f97cbb39eff3faa3818ec364e24afde4','5030d4779fad1fc7af127bbb500411d2fd001a2fb27663bb1578402c341405d3');
INSERT INTO "audit" VALUES(11,'2026-12-02T13:03:08.207789Z','legacy-user','case.add','case:2026-001','{"retain_until":"2031-12-31","retain_years":null,"title":null}','5030d4779fad1fc7af127bbb500411d2fd001a2fb27663bb1578402c341405d3','fbe1b76088806e392f551a027a9e0b8c4bbe2b41aecf29a36ba00dab9d399fbe');
INSERT INTO "audit" VALUES(12,'2026-12-02T13:03:08.781460Z','legacy-user','case.link','clip:1','{"case":"2026-001"}','fbe1b76088806e392f551a027a9e0b8c4bbe2b41aecf29a36ba00dab9d399fbe','1c7004765f808374dca00a8638e390216c12ebe26024efd483b7d2077203fb04');
INSERT INTO "audit" VALUES(13,'2026-12-02T13:03:08.781460Z','legacy-user','case.link','clip:3','{"case":"2026-001"}','1c7004765f808374dca00a8638e390216c12ebe26024efd483b7d2077203fb04','b3bc52aefe9b005a999c2e7ffad744b799167332d5f45eebc0422d1ec6c6bcc5');
INSERT INTO "audit" VALUES(14,'2026-12-02T13:03:09.351172Z','legacy-user','hold.add','device:BC-0009','{"hold":1,"reason":"诉讼","since":null,"until":null}','b3bc52aefe9b005a999c2e7ffad744b799167332d5f45eebc0422d1ec6c6bcc5','90a7d8c6b5d221459ad9f56e7d9afd912822cb92d0057c57bf3fba8e0d58e3b4');
CREATE TABLE "case_clips" (
   "id" INTEGER PRIMARY KEY,
   "case_id" INTEGER NOT NULL REFERENCES "cases"("id"),
   "clip_id" INTEGER NOT NULL REFERENCES "clips"("id"),
   "linked_at" TEXT NOT NULL,
   "linked_by" TEXT NOT NULL,
   "unlinked_at" TEXT,
   "unlinked_by" TEXT
);
INSERT INTO "case_clips" VALUES(1,1,1,'2026-12-02T13:03:08.781460Z','legacy-user',NULL,NULL);
INSERT INTO "case_clips" VALUES(2,1,3,'2026-12-02T13:03:08.781460Z','legacy-user',NULL,NULL);
CREATE TABLE "cases" (
   "id" INTEGER PRIMARY KEY,
   "case_no" TEXT NOT NULL,
   "title" TEXT,
   "created_at" TEXT NOT NULL,
   "created_by" TEXT NOT NULL,
   "retain_until" TEXT,
   "retain_years" INTEGER,
   "closed_on" TEXT
);
INSERT INTO "cases" VALUES(1,'2026-001',NULL,'2026-12-02T13:03:08.207789Z','legacy-user','2031-12-31',NULL,NULL);
CREATE TABLE "clips" (
   "id" INTEGER PRIMARY KEY,
   "blake3" TEXT NOT NULL REFERENCES "objects"("blake3"),
   "sha256" TEXT NOT NULL,
   "size" INTEGER NOT NULL,
   "device_serial" TEXT NOT NULL,
   "unregistered_device" INTEGER DEFAULT 0,
   "ingest_id" INTEGER NOT NULL REFERENCES "ingests"("id"),
   "original_path" TEXT NOT NULL,
   "original_mtime" TEXT,
   "media_kind" TEXT NOT NULL,
   "container" TEXT,
   "codec" TEXT,
   "recorded_start" TEXT,
   "recorded_end" TEXT,
   "duration_s" REAL,
   "time_source" TEXT,
   "probe_error" TEXT,
   "ingested_at" TEXT NOT NULL,
   "state" TEXT NOT NULL DEFAULT 'stored'
, "due_since" TEXT, "purged_at" TEXT, "purge_reason" TEXT);
INSERT INTO "clips" VALUES(1,'7ed2dc4791aa35bfa7b9595047b02dd1a6b912f67142dd384315b2bcea2b0dfb','a5f863baf23a17bd2de2e10ca0a64a1a9c566f41f13776bd270f12018e09adad',2012,'BC-0009',0,1,'DCIM/20261120_090000_0001.MP4','2026-12-02T13:03:05.085029Z','video',NULL,NULL,'2026-11-20T01:00:00.000000Z','2026-11-20T01:00:00.000000Z',NULL,'filename','Invalid data found when processing input','2026-12-02T13:03:06.398404Z','stored',NULL,NULL,NULL);
INSERT INTO "clips" VALUES(2,'ed9b726f7605af02aa27929e9ef763380a6e9f0eb75e783b1dc1fc163b8da6f7','b87a388bca23b658cf757f013f34be11a7c0dff7a4eec7d87712c82a1a407cfd',2012,'BC-0009',0,1,'DCIM/20261120_091500_0002.MP4','2026-12-02T13:03:05.085093Z','video',NULL,NULL,'2026-11-20T01:15:00.000000Z','2026-11-20T01:15:00.000000Z',NULL,'filename','Invalid data found when processing input','2026-12-02T13:03:06.417868Z','stored',NULL,NULL,NULL);
INSERT INTO "clips" VALUES(3,'1026f41a5aa02f402929c81e11b02b065b19285f66e99695bf91dfcb84a0a009','76750d3d77e31cddf79c48958acc97a3716cd013f5db210957075f97012de304',2012,'BC-0009',0,1,'DCIM/20261120_093000_0003.MP4','2026-12-02T13:03:05.085139Z','video',NULL,NULL,'2026-11-20T01:30:00.000000Z','2026-11-20T01:30:00.000000Z',NULL,'filename','Invalid data found when processing input','2026-12-02T13:03:06.422514Z','stored',NULL,NULL,NULL);
CREATE TABLE "devices" (
   "id" INTEGER PRIMARY KEY,
   "serial" TEXT NOT NULL,
   "custodian" TEXT NOT NULL,
   "unit" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "label" TEXT,
   "registered_at" TEXT NOT NULL,
   "registered_by" TEXT NOT NULL
);
INSERT INTO "devices" VALUES(1,'BC-0009','张三','一中队','bodycam',NULL,'2026-12-02T13:03:05.882545Z','legacy-user');
CREATE TABLE "disc_clips" (
   "id" INTEGER PRIMARY KEY,
   "disc_id" INTEGER NOT NULL REFERENCES "discs"("id"),
   "clip_id" INTEGER NOT NULL REFERENCES "clips"("id"),
   "path" TEXT NOT NULL,
   "blake3" TEXT NOT NULL,
   "sha256" TEXT NOT NULL,
   "size" INTEGER NOT NULL
);
CREATE TABLE "discs" (
   "id" INTEGER PRIMARY KEY,
   "volume_id" TEXT NOT NULL,
   "year" INTEGER NOT NULL,
   "seq" INTEGER NOT NULL,
   "media" TEXT NOT NULL,
   "purpose" TEXT NOT NULL,
   "evidence_case_id" INTEGER REFERENCES "cases"("id"),
   "image_path" TEXT,
   "image_bytes" INTEGER NOT NULL,
   "image_sha256" TEXT NOT NULL,
   "image_blake3" TEXT NOT NULL,
   "payload_bytes" INTEGER NOT NULL,
   "clip_count" INTEGER NOT NULL,
   "reasons" TEXT,
   "created_at" TEXT NOT NULL,
   "created_by" TEXT NOT NULL,
   "state" TEXT NOT NULL DEFAULT 'image',
   "burned_at" TEXT,
   "burned_by" TEXT,
   "location" TEXT,
   "image_verified_at" TEXT,
   "image_verify_result" TEXT,
   "disc_verified_at" TEXT,
   "disc_verify_result" TEXT
);
CREATE TABLE "findings" (
   "id" INTEGER PRIMARY KEY,
   "ingest_id" INTEGER NOT NULL REFERENCES "ingests"("id"),
   "device_serial" TEXT NOT NULL,
   "kind" TEXT NOT NULL,
   "clip_id" INTEGER REFERENCES "clips"("id"),
   "other_clip_id" INTEGER,
   "seconds" REAL,
   "detail" TEXT
);
INSERT INTO "findings" VALUES(1,1,'BC-0009','gap',2,1,900.0,NULL);
INSERT INTO "findings" VALUES(2,1,'BC-0009','gap',3,2,900.0,NULL);
INSERT INTO "findings" VALUES(3,1,'BC-0009','late_handover',1,NULL,1080186.458187,'{"recording_day": "2026-11-20", "hours_after_end": 300.1, "over_deadline": true}');
INSERT INTO "findings" VALUES(4,1,'BC-0009','late_handover',2,NULL,1079286.458187,'{"recording_day": "2026-11-20", "hours_after_end": 299.8, "over_deadline": true}');
INSERT INTO "findings" VALUES(5,1,'BC-0009','late_handover',3,NULL,1078386.458187,'{"recording_day": "2026-11-20", "hours_after_end": 299.6, "over_deadline": true}');
CREATE TABLE "flags" (
   "id" INTEGER PRIMARY KEY,
   "clip_id" INTEGER NOT NULL REFERENCES "clips"("id"),
   "reason" TEXT NOT NULL,
   "note" TEXT,
   "flagged_at" TEXT NOT NULL,
   "flagged_by" TEXT NOT NULL,
   "unflagged_at" TEXT,
   "unflagged_by" TEXT,
   "unflag_note" TEXT
);
INSERT INTO "flags" VALUES(1,1,'dispute','当事人投诉','2026-12-02T13:03:06.907058Z','legacy-user',NULL,NULL,NULL);
INSERT INTO "flags" VALUES(2,2,'incident',NULL,'2026-12-02T13:03:07.308292Z','legacy-user','2026-12-02T13:03:07.756408Z','legacy-user','误标');
CREATE TABLE "holds" (
   "id" INTEGER PRIMARY KEY,
   "clip_id" INTEGER REFERENCES "clips"("id"),
   "case_id" INTEGER REFERENCES "cases"("id"),
   "device_serial" TEXT,
   "since" TEXT,
   "until" TEXT,
   "reason" TEXT NOT NULL,
   "placed_at" TEXT NOT NULL,
   "placed_by" TEXT NOT NULL,
   "released_at" TEXT,
   "released_by" TEXT,
   "release_note" TEXT
);
INSERT INTO "holds" VALUES(1,NULL,NULL,'BC-0009',NULL,NULL,'诉讼','2026-12-02T13:03:09.351172Z','legacy-user',NULL,NULL,NULL);
CREATE TABLE "ingest_items" (
   "id" INTEGER PRIMARY KEY,
   "ingest_id" INTEGER NOT NULL REFERENCES "ingests"("id"),
   "original_path" TEXT NOT NULL,
   "size" INTEGER,
   "status" TEXT NOT NULL,
   "error" TEXT,
   "blake3" TEXT,
   "sha256" TEXT,
   "clip_id" INTEGER REFERENCES "clips"("id")
);
INSERT INTO "ingest_items" VALUES(1,1,'DCIM/20261120_090000_0001.MP4',2012,'stored',NULL,'7ed2dc4791aa35bfa7b9595047b02dd1a6b912f67142dd384315b2bcea2b0dfb','a5f863baf23a17bd2de2e10ca0a64a1a9c566f41f13776bd270f12018e09adad',1);
INSERT INTO "ingest_items" VALUES(2,1,'DCIM/20261120_091500_0002.MP4',2012,'stored',NULL,'ed9b726f7605af02aa27929e9ef763380a6e9f0eb75e783b1dc1fc163b8da6f7','b87a388bca23b658cf757f013f34be11a7c0dff7a4eec7d87712c82a1a407cfd',2);
INSERT INTO "ingest_items" VALUES(3,1,'DCIM/20261120_093000_0003.MP4',2012,'stored',NULL,'1026f41a5aa02f402929c81e11b02b065b19285f66e99695bf91dfcb84a0a009','76750d3d77e31cddf79c48958acc97a3716cd013f5db210957075f97012de304',3);
CREATE TABLE "ingests" (
   "id" INTEGER PRIMARY KEY,
   "started_at" TEXT NOT NULL,
   "finished_at" TEXT,
   "actor" TEXT NOT NULL,
   "host" TEXT NOT NULL,
   "pid" INTEGER,
   "device_serial" TEXT NOT NULL,
   "device_registered" INTEGER,
   "custodian" TEXT,
   "source" TEXT NOT NULL,
   "source_kind" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "stored" INTEGER DEFAULT 0,
   "duplicates" INTEGER DEFAULT 0,
   "failed" INTEGER DEFAULT 0,
   "skipped" INTEGER DEFAULT 0,
   "bytes_stored" INTEGER DEFAULT 0,
   "clock_notes" TEXT
);
INSERT INTO "ingests" VALUES(1,'2026-12-02T13:03:06.358772Z','2026-12-02T13:03:06.458187Z','legacy-user','vm',19368,'BC-0009',1,'张三','/tmp/legacy/card','folder','done',3,0,0,0,6036,'{"plugged_at": "2026-12-02T13:03:06.358772Z", "newest_clip_end": "2026-11-20T01:30:00.000000Z", "host_minus_newest_s": 1078386.4, "previous_handover": null, "verdict": "ok"}');
CREATE TABLE "objects" (
   "blake3" TEXT PRIMARY KEY,
   "sha256" TEXT NOT NULL,
   "size" INTEGER NOT NULL,
   "stored_at" TEXT NOT NULL,
   "last_verified_at" TEXT,
   "last_verify_result" TEXT
);
INSERT INTO "objects" VALUES('7ed2dc4791aa35bfa7b9595047b02dd1a6b912f67142dd384315b2bcea2b0dfb','a5f863baf23a17bd2de2e10ca0a64a1a9c566f41f13776bd270f12018e09adad',2012,'2026-12-02T13:03:06.398404Z',NULL,NULL);
INSERT INTO "objects" VALUES('ed9b726f7605af02aa27929e9ef763380a6e9f0eb75e783b1dc1fc163b8da6f7','b87a388bca23b658cf757f013f34be11a7c0dff7a4eec7d87712c82a1a407cfd',2012,'2026-12-02T13:03:06.417868Z',NULL,NULL);
INSERT INTO "objects" VALUES('1026f41a5aa02f402929c81e11b02b065b19285f66e99695bf91dfcb84a0a009','76750d3d77e31cddf79c48958acc97a3716cd013f5db210957075f97012de304',2012,'2026-12-02T13:03:06.422514Z',NULL,NULL);
CREATE UNIQUE INDEX "idx_devices_serial"
    ON "devices" ("serial");
CREATE UNIQUE INDEX "idx_clips_device_serial_original_path_blake3"
    ON "clips" ("device_serial", "original_path", "blake3");
CREATE INDEX "idx_clips_device_serial_recorded_start"
    ON "clips" ("device_serial", "recorded_start");
CREATE INDEX "idx_clips_recorded_start"
    ON "clips" ("recorded_start");
CREATE INDEX "idx_clips_blake3"
    ON "clips" ("blake3");
CREATE INDEX "idx_ingest_items_ingest_id"
    ON "ingest_items" ("ingest_id");
CREATE INDEX "idx_findings_ingest_id"
    ON "findings" ("ingest_id");
CREATE INDEX "idx_findings_clip_id"
    ON "findings" ("clip_id");
CREATE UNIQUE INDEX "idx_audit_hash"
    ON "audit" ("hash");
CREATE UNIQUE INDEX "idx_audit_prev_hash"
    ON "audit" ("prev_hash");
CREATE INDEX "idx_audit_subject"
    ON "audit" ("subject");
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX "idx_flags_clip_id"
    ON "flags" ("clip_id");
CREATE UNIQUE INDEX "idx_cases_case_no"
    ON "cases" ("case_no");
CREATE INDEX "idx_case_clips_clip_id"
    ON "case_clips" ("clip_id");
CREATE INDEX "idx_case_clips_case_id"
    ON "case_clips" ("case_id");
CREATE INDEX "idx_clips_state_due_since"
    ON "clips" ("state", "due_since");
CREATE INDEX idx_clips_listed_at ON clips (COALESCE(recorded_start, ingested_at));
CREATE INDEX "idx_ingests_device_serial_started_at"
    ON "ingests" ("device_serial", "started_at");
CREATE UNIQUE INDEX "idx_discs_volume_id"
    ON "discs" ("volume_id");
CREATE UNIQUE INDEX "idx_discs_year_seq"
    ON "discs" ("year", "seq");
CREATE UNIQUE INDEX "idx_disc_clips_disc_id_clip_id"
    ON "disc_clips" ("disc_id", "clip_id");
CREATE INDEX "idx_disc_clips_clip_id"
    ON "disc_clips" ("clip_id");
COMMIT;
