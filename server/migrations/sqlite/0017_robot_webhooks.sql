-- What a subscription's receiver understands: 'standard' (Standard Webhooks: the notice as
-- JSON, signed in headers), 'wecom' (a WeCom group robot: a text message) or 'dingtalk' (a
-- DingTalk group robot: a text message, the URL signed with the robot's secret).
ALTER TABLE webhooks ADD COLUMN format TEXT NOT NULL DEFAULT 'standard';
