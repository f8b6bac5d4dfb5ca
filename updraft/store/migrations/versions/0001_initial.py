"""Initial schema: every table of the store as of Updraft 0.1.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Column types are spelled out here rather than imported from ``updraft.store.models`` so that
this revision keeps creating the same schema when the models change later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def id_string(length: int) -> sa.types.TypeEngine:
    """Case-sensitive identifier; 3-byte charset on MySQL/MariaDB to fit index limits."""
    mysql_type = mysql.VARCHAR(length, charset="utf8mb3", collation="utf8mb3_bin")
    return sa.String(length).with_variant(mysql_type, "mysql").with_variant(mysql_type, "mariadb")


def long_text() -> sa.types.TypeEngine:
    """Text above 64 KiB on MySQL/MariaDB too."""
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql").with_variant(mysql.LONGTEXT(), "mariadb")


def utc_datetime() -> sa.types.TypeEngine:
    """The storage type behind ``updraft.store.models.UtcDateTime`` on each backend."""
    return (sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mysql")
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(sa.DateTime(timezone=True), "postgresql"))


def upgrade() -> None:
    op.create_table('connection',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('conn_id', id_string(250), nullable=False),
    sa.Column('conn_type', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('host', sa.String(length=500), nullable=True),
    sa.Column('schema', sa.String(length=500), nullable=True),
    sa.Column('login', sa.Text(), nullable=True),
    sa.Column('password', sa.Text(), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('extra', sa.Text(), nullable=True),
    sa.Column('is_encrypted', sa.Boolean(), nullable=False),
    sa.Column('is_extra_encrypted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connection')),
    sa.UniqueConstraint('conn_id', name=op.f('uq_connection_conn_id'))
    )
    op.create_table('dag',
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('is_paused', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('fileloc', sa.String(length=2000), nullable=True),
    sa.Column('owners', sa.String(length=2000), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=True),
    sa.Column('schedule_description', sa.String(length=1000), nullable=True),
    sa.Column('timetable', sa.JSON(), nullable=True),
    sa.Column('catchup', sa.Boolean(), nullable=False),
    sa.Column('max_active_runs', sa.Integer(), nullable=True),
    sa.Column('max_active_tasks', sa.Integer(), nullable=True),
    sa.Column('dag_hash', sa.String(length=64), nullable=True),
    sa.Column('next_dagrun', utc_datetime(), nullable=True),
    sa.Column('next_dagrun_data_interval_start', utc_datetime(), nullable=True),
    sa.Column('next_dagrun_data_interval_end', utc_datetime(), nullable=True),
    sa.Column('next_dagrun_create_after', utc_datetime(), nullable=True),
    sa.Column('last_parsed_time', utc_datetime(), nullable=True),
    sa.Column('has_import_errors', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('dag_id', name=op.f('pk_dag'))
    )
    with op.batch_alter_table('dag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dag_is_active_is_paused'), ['is_active', 'is_paused'], unique=False)
        batch_op.create_index(batch_op.f('ix_dag_next_dagrun_create_after'), ['next_dagrun_create_after'], unique=False)

    op.create_table('dag_code',
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('fileloc', sa.String(length=2000), nullable=False),
    sa.Column('source_code', long_text(), nullable=False),
    sa.Column('last_updated', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('file_hash', name=op.f('pk_dag_code'))
    )
    op.create_table('dag_run',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('run_type', sa.String(length=50), nullable=False),
    sa.Column('logical_date', utc_datetime(), nullable=True),
    sa.Column('data_interval_start', utc_datetime(), nullable=True),
    sa.Column('data_interval_end', utc_datetime(), nullable=True),
    sa.Column('queued_at', utc_datetime(), nullable=True),
    sa.Column('start_date', utc_datetime(), nullable=True),
    sa.Column('end_date', utc_datetime(), nullable=True),
    sa.Column('conf', sa.JSON(), nullable=True),
    sa.Column('external_trigger', sa.Boolean(), nullable=False),
    sa.Column('triggered_by', sa.String(length=50), nullable=True),
    sa.Column('dag_hash', sa.String(length=64), nullable=True),
    sa.Column('clear_number', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('last_scheduling_decision', utc_datetime(), nullable=True),
    sa.Column('updated_at', utc_datetime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dag_run')),
    sa.UniqueConstraint('dag_id', 'run_id', name=op.f('uq_dag_run_dag_id_run_id'))
    )
    with op.batch_alter_table('dag_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dag_run_dag_id_logical_date'), ['dag_id', 'logical_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_dag_run_state_dag_id'), ['state', 'dag_id'], unique=False)

    op.create_table('import_error',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('filename', sa.String(length=1000), nullable=False),
    sa.Column('stacktrace', long_text(), nullable=False),
    sa.Column('timestamp', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_error')),
    sa.UniqueConstraint('filename', name=op.f('uq_import_error_filename'))
    )
    op.create_table('lease',
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('holder', sa.String(length=250), nullable=False),
    sa.Column('expires_at', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_lease'))
    )
    op.create_table('log_event',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dttm', utc_datetime(), nullable=False),
    sa.Column('event', sa.String(length=60), nullable=False),
    sa.Column('owner', sa.String(length=500), nullable=True),
    sa.Column('dag_id', id_string(250), nullable=True),
    sa.Column('run_id', id_string(250), nullable=True),
    sa.Column('task_id', id_string(250), nullable=True),
    sa.Column('map_index', sa.Integer(), nullable=True),
    sa.Column('try_number', sa.Integer(), nullable=True),
    sa.Column('extra', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_log_event'))
    )
    with op.batch_alter_table('log_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_log_event_dag_id_dttm'), ['dag_id', 'dttm'], unique=False)
        batch_op.create_index(batch_op.f('ix_log_event_dttm'), ['dttm'], unique=False)

    op.create_table('node',
    sa.Column('node_id', sa.String(length=250), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('hostname', sa.String(length=1000), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('started_at', utc_datetime(), nullable=False),
    sa.Column('heartbeat_at', utc_datetime(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('info', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_node'))
    )
    op.create_table('role',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role')),
    sa.UniqueConstraint('name', name=op.f('uq_role_name'))
    )
    op.create_table('serialized_dag',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('dag_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('fileloc', sa.String(length=2000), nullable=True),
    sa.Column('file_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_serialized_dag')),
    sa.UniqueConstraint('dag_id', 'dag_hash', name=op.f('uq_serialized_dag_dag_id_dag_hash'))
    )
    op.create_table('sla_miss',
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('task_id', id_string(250), nullable=False),
    sa.Column('logical_date', utc_datetime(), nullable=True),
    sa.Column('timestamp', utc_datetime(), nullable=False),
    sa.Column('email_sent', sa.Boolean(), nullable=False),
    sa.Column('notification_sent', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('dag_id', 'run_id', 'task_id', name=op.f('pk_sla_miss'))
    )
    op.create_table('slot_pool',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('pool', sa.String(length=256), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot_pool')),
    sa.UniqueConstraint('pool', name=op.f('uq_slot_pool_pool'))
    )
    op.create_table('task_instance',
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('task_id', id_string(250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('max_tries', sa.Integer(), nullable=False),
    sa.Column('start_date', utc_datetime(), nullable=True),
    sa.Column('end_date', utc_datetime(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('queued_dttm', utc_datetime(), nullable=True),
    sa.Column('scheduled_dttm', utc_datetime(), nullable=True),
    sa.Column('next_retry_at', utc_datetime(), nullable=True),
    sa.Column('heartbeat_at', utc_datetime(), nullable=True),
    sa.Column('hostname', sa.String(length=1000), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('executor', sa.String(length=100), nullable=True),
    sa.Column('external_executor_id', sa.String(length=250), nullable=True),
    sa.Column('queue', sa.String(length=256), nullable=True),
    sa.Column('pool', sa.String(length=256), nullable=False),
    sa.Column('pool_slots', sa.Integer(), nullable=False),
    sa.Column('priority_weight', sa.Integer(), nullable=False),
    sa.Column('operator', sa.String(length=1000), nullable=True),
    sa.Column('rendered_fields', sa.JSON(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('updated_at', utc_datetime(), nullable=True),
    sa.PrimaryKeyConstraint('dag_id', 'run_id', 'task_id', 'map_index', name=op.f('pk_task_instance'))
    )
    with op.batch_alter_table('task_instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_instance_dag_id_task_id_state'), ['dag_id', 'task_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_instance_pool_state'), ['pool', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_instance_state_dag_id'), ['state', 'dag_id'], unique=False)

    op.create_table('task_instance_try',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('task_id', id_string(250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('start_date', utc_datetime(), nullable=True),
    sa.Column('end_date', utc_datetime(), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('hostname', sa.String(length=1000), nullable=True),
    sa.Column('executor', sa.String(length=100), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_instance_try')),
    sa.UniqueConstraint('dag_id', 'run_id', 'task_id', 'map_index', 'try_number', name=op.f('uq_task_instance_try_dag_id_run_id_task_id_map_index_try_number'))
    )
    op.create_table('task_reschedule',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('task_id', id_string(250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('start_date', utc_datetime(), nullable=False),
    sa.Column('end_date', utc_datetime(), nullable=False),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('reschedule_date', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_reschedule'))
    )
    with op.batch_alter_table('task_reschedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_reschedule_dag_id_run_id_task_id_map_index_try_number'), ['dag_id', 'run_id', 'task_id', 'map_index', 'try_number'], unique=False)

    op.create_table('ti_event',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('task_id', id_string(250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('timestamp', utc_datetime(), nullable=False),
    sa.Column('old_state', sa.String(length=20), nullable=True),
    sa.Column('new_state', sa.String(length=20), nullable=True),
    sa.Column('cause', sa.Text(), nullable=True),
    sa.Column('node', sa.String(length=250), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ti_event'))
    )
    with op.batch_alter_table('ti_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ti_event_dag_id_run_id_task_id_map_index'), ['dag_id', 'run_id', 'task_id', 'map_index'], unique=False)

    op.create_table('trigger_dedup',
    sa.Column('msg_id', sa.String(length=250), nullable=False),
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('created_at', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('msg_id', name=op.f('pk_trigger_dedup'))
    )
    op.create_table('user',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=256), nullable=False),
    sa.Column('email', sa.String(length=512), nullable=True),
    sa.Column('first_name', sa.String(length=256), nullable=True),
    sa.Column('last_name', sa.String(length=256), nullable=True),
    sa.Column('password_hash', sa.String(length=512), nullable=True),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', utc_datetime(), nullable=False),
    sa.Column('last_login', utc_datetime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('username', name=op.f('uq_user_username'))
    )
    op.create_table('variable',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', id_string(250), nullable=False),
    sa.Column('val', long_text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('is_encrypted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variable')),
    sa.UniqueConstraint('key', name=op.f('uq_variable_key'))
    )
    op.create_table('xcom',
    sa.Column('dag_id', id_string(250), nullable=False),
    sa.Column('run_id', id_string(250), nullable=False),
    sa.Column('task_id', id_string(250), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('key', id_string(128), nullable=False),
    sa.Column('value', long_text(), nullable=True),
    sa.Column('timestamp', utc_datetime(), nullable=False),
    sa.PrimaryKeyConstraint('dag_id', 'run_id', 'task_id', 'map_index', 'key', name=op.f('pk_xcom'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', utc_datetime(), nullable=False),
    sa.Column('expires_at', utc_datetime(), nullable=True),
    sa.Column('last_used_at', utc_datetime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_api_token_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )


def downgrade() -> None:
    op.drop_table('api_token')
    op.drop_table('xcom')
    op.drop_table('variable')
    op.drop_table('user')
    op.drop_table('trigger_dedup')
    with op.batch_alter_table('ti_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ti_event_dag_id_run_id_task_id_map_index'))

    op.drop_table('ti_event')
    with op.batch_alter_table('task_reschedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_reschedule_dag_id_run_id_task_id_map_index_try_number'))

    op.drop_table('task_reschedule')
    op.drop_table('task_instance_try')
    with op.batch_alter_table('task_instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_instance_state_dag_id'))
        batch_op.drop_index(batch_op.f('ix_task_instance_pool_state'))
        batch_op.drop_index(batch_op.f('ix_task_instance_dag_id_task_id_state'))

    op.drop_table('task_instance')
    op.drop_table('slot_pool')
    op.drop_table('sla_miss')
    op.drop_table('serialized_dag')
    op.drop_table('role')
    op.drop_table('node')
    with op.batch_alter_table('log_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_log_event_dttm'))
        batch_op.drop_index(batch_op.f('ix_log_event_dag_id_dttm'))

    op.drop_table('log_event')
    op.drop_table('lease')
    op.drop_table('import_error')
    with op.batch_alter_table('dag_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dag_run_state_dag_id'))
        batch_op.drop_index(batch_op.f('ix_dag_run_dag_id_logical_date'))

    op.drop_table('dag_run')
    op.drop_table('dag_code')
    with op.batch_alter_table('dag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dag_next_dagrun_create_after'))
        batch_op.drop_index(batch_op.f('ix_dag_is_active_is_paused'))

    op.drop_table('dag')
    op.drop_table('connection')
