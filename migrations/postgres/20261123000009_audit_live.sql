-- Live audit (PostgreSQL): each appended event is announced on channel `deployclaw_audit` as
-- "<client id>:<event id>" (client id empty for platform events). NOTIFY is delivered at commit, to every
-- server process that LISTENs, so viewers connected to any replica see it. The payload names no content:
-- viewers re-read the event, scoped by their own client id.
CREATE FUNCTION audit_logs_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('deployclaw_audit', COALESCE(NEW.client_id::text, '') || ':' || NEW.id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER audit_logs_announce AFTER INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_announce();
